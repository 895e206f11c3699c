"""Count what a reconcile of N unchanged packages costs: builds, GitHub, registry and AWS requests.

Run by hand: `.venv/bin/python bench/reconcile.py [--packages 100] [--tags 3]`. On the local stand-ins (the GHCR
stand-in and an ECR stand-in behind counting proxies, moto, the GitHub stand-in), it pushes N packages with
`--tags` tags each, backfills them through an `installation` `created` delivery (what installing does), then
runs `reconcile` with nothing changed and counts everything that run caused: queue messages, dispatches,
builds, GitHub API requests, source and destination registry requests, and AWS API calls by operation.
The App's code runs as its handlers run it (edge.receive, dispatch.handle_message, reconcile.run, and
run_job.run for each build, with the variables CodeBuild would resolve).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib import aws  # noqa: E402
from chalicelib.dispatch import handler as dispatch  # noqa: E402
from chalicelib.github import client as github_client  # noqa: E402
from chalicelib.webhook import edge  # noqa: E402
from chalicelib.heal import reconcile  # noqa: E402
from chalicelib.build import run_job  # noqa: E402
from chalicelib.webhook import events  # noqa: E402
from chalicelib.build.job import BuildJob  # noqa: E402
from chalicelib.config import settings  # noqa: E402
from standins import images  # noqa: E402
from standins.aws import ACCOUNT_ID, MotoServer, apply_aws_environment  # noqa: E402
from standins.codebuild import RecordingCodeBuild, resolve_variables  # noqa: E402
from standins.faults import FaultProxy  # noqa: E402
from standins.ghcr_ecr import EcrStandin, push_to, start_ghcr  # noqa: E402
from standins.github import GitHubStandIn  # noqa: E402
from standins.registry import BasicAuth, RegistryProcess  # noqa: E402
from standins.tokens import PULL, Credential, Principal  # noqa: E402

SECRET = "bench-secret"


class AwsCalls:
    """Counts every botocore API call (service.Operation) of the sessions it is attached to."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def attach(self, session: Any) -> None:
        """Count the calls made through this boto3 session."""
        session.events.register("before-call", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}.{model.name}"] += 1


def main() -> int:
    """Set up, backfill, reconcile; print the counts of the reconcile alone."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=100)
    parser.add_argument("--tags", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ghcr2ecr-bench-") as work, contextlib.ExitStack() as stack:
        workdir = Path(work)
        ghcr = start_ghcr(workdir / "ghcr")
        stack.callback(ghcr.stop)
        login = Credential("AWS", f"{ACCOUNT_ID}-auth-token")
        ecr = EcrStandin(RegistryProcess(workdir / "ecr", BasicAuth((login,)), "ecr").start(), login)
        stack.callback(ecr.stop)
        source, dest = FaultProxy(ghcr.url, ghcr.tokens.url).start(), FaultProxy(ecr.url).start()
        stack.callback(source.stop)
        stack.callback(dest.stop)
        calls = AwsCalls()  # attached before any client exists: botocore clients copy their session's events
        import boto3

        boto3.setup_default_session()
        calls.attach(boto3.DEFAULT_SESSION)
        calls.attach(aws.session())
        moto = stack.enter_context(MotoServer())
        github = stack.enter_context(GitHubStandIn(app_id=4242))
        github.add_installation(77, "octo-org", 1001)
        env = provision(moto, github, source.url, dest.url, ghcr)
        names = [f"pkg-{n:04d}" for n in range(args.packages)]
        tags = ["latest", *(f"v{n}" for n in range(1, args.tags))]
        for name in names:
            push_to(ghcr, f"octo-org/{name}", images.single_image(seed=name), tags)
        started = time.monotonic()
        backfill(names)
        first = drain(env, github, ghcr)
        print(f"backfill: {len(first['builds'])} build(s) for {args.packages} packages, "
              f"{time.monotonic() - started:.1f}s; statuses {Counter(r['status'] for r in first['results'])}")
        github.clear_requests()
        source.reset_traffic()
        dest.reset_traffic()
        calls.calls.clear()
        started = time.monotonic()
        summary = reconcile.run(app=github_client.github_app())
        second = drain(env, github, ghcr)
        wall = time.monotonic() - started
        statuses = Counter(r["status"] for r in second["results"])
        moved = sum((r["report"] or {}).get("bytes_moved", 0) for r in second["results"])
        set_tags = sum(len((r["report"] or {}).get("tags", {}).get("set", [])) for r in second["results"])
        print(f"reconcile of {args.packages} unchanged packages ({args.tags} tags each): {summary.jobs} job(s), "
              f"{len(second['builds'])} build(s), {wall:.1f}s here; statuses {dict(statuses)}; "
              f"{moved} bytes moved, {set_tags} tags set")
        by_path = Counter(_kind(r.method, r.path) for r in github.requests)
        print(f"  GitHub API: {len(github.requests)} requests {dict(by_path)}")
        print(f"  source registry (GHCR): {source.traffic.total} requests {dict(source.traffic.requests)}")
        print(f"  destination registry (ECR): {dest.traffic.total} requests {dict(dest.traffic.requests)}")
        print(f"  AWS API: {sum(calls.calls.values())} calls {dict(sorted(calls.calls.items()))}")
    return 0


def provision(moto: str, github: GitHubStandIn, ghcr_url: str, ecr_url: str, ghcr: Any) -> dict[str, str]:
    """Create the queue, project, App secrets and read credential; set the deployment's environment."""
    import boto3

    apply_aws_environment(moto, os.environ)
    ssm = aws.session().client("ssm")
    ssm.put_parameter(Name="/ghcr2ecr/github/private-key", Type="SecureString", Value=github.private_key_pem)
    ssm.put_parameter(Name="/ghcr2ecr/github/webhook-secret", Type="SecureString", Value=SECRET)
    queue = boto3.client("sqs").create_queue(QueueName="bench-sync.fifo", Attributes={
        "FifoQueue": "true", "VisibilityTimeout": "360"})["QueueUrl"]
    boto3.client("codebuild").create_project(
        name="bench-copy", source={"type": "S3", "location": "bundle/ghcr2ecr.zip"}, artifacts={"type": "NO_ARTIFACTS"},
        serviceRole=f"arn:aws:iam::{ACCOUNT_ID}:role/copy", environment={
            "type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0", "computeType": "BUILD_GENERAL1_SMALL"})
    boto3.client("secretsmanager").create_secret(Name="ghcr2ecr/ghcr-pull/1001", SecretString=json.dumps(
        {"username": ghcr.fallback.username, "accessToken": ghcr.fallback.password}))
    os.environ.update({"GITHUB_APP_ID": "4242", "GITHUB_API_URL": github.url, "ALLOWED_ACCOUNTS": "octo-org",
                       "SYNC_QUEUE_URL": queue, "CODEBUILD_PROJECT": "bench-copy", "GHCR_REGISTRY": ghcr_url,
                       "ECR_REGISTRY": ecr_url, "POWERTOOLS_SERVICE_NAME": "ghcr2ecr", "POWERTOOLS_LOG_LEVEL": "ERROR",
                       "POWERTOOLS_METRICS_DISABLED": "true"})
    settings.cache_clear()
    aws.reset()
    aws.use(aws.CodeBuild, RecordingCodeBuild())
    return {"queue": queue}


def backfill(names: list[str]) -> None:
    """Deliver the `installation` `created` event naming every repository (what installing the App sends)."""
    payload = {"action": "created", "installation": {
        "id": 77, "account": {"login": "octo-org", "id": 1001, "type": "Organization"},
        "target_type": "Organization"}, "repositories": [
        {"id": n, "name": name, "full_name": f"octo-org/{name}", "private": True} for n, name in enumerate(names)]}
    body = json.dumps(payload).encode()
    status, answer = edge.receive({"x-github-event": "installation", "x-github-delivery": "bench-install-1",
                                     "x-hub-signature-256": events.sign(SECRET.encode(), body)}, body)
    assert status == 202, answer


def drain(env: dict[str, str], github: GitHubStandIn, ghcr: Any) -> dict[str, Any]:
    """Dispatch every queued job, then run every build it started; return the builds and per-package results."""
    sqs, codebuild = aws.session().client("sqs"), aws.codebuild()
    start = len(codebuild.builds)  # type: ignore[attr-defined]
    for _ in range(1000):
        batch = sqs.receive_message(QueueUrl=env["queue"], MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            break
        for message in batch:
            dispatch.handle_message(message["Body"])
            sqs.delete_message(QueueUrl=env["queue"], ReceiptHandle=message["ReceiptHandle"])
    for token in github.tokens:
        ghcr.tokens.policy.principals.append(
            Principal(Credential("x-access-token", token.value), {ghcr.public_prefix + "*": PULL}))
    builds = codebuild.builds[start:]  # type: ignore[attr-defined]
    results = []
    for build in builds:
        # what CodeBuild resolves before the build starts (counted: it is CodeBuild's GetParameters)
        variables = resolve_variables(build["variables"], aws.session().client("ssm"),
                                      aws.session().client("secretsmanager"))
        job = BuildJob.from_json(variables["GHCR2ECR_JOB"])
        results += run_job.run(job, {**os.environ, **variables, "GHCR2ECR_DEST_ECR": "true",
                                     "GHCR2ECR_TOKEN_REALMS": ghcr.tokens.url})
    return {"builds": builds, "results": results}


def _kind(method: str, path: str) -> str:
    """Group GitHub requests by endpoint."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["app", "installations"] and len(parts) == 4:
        return f"{method} /app/installations/{{id}}/{parts[3]}"
    if parts[0] == "repos":
        return f"{method} /repos/{{o}}/{{r}}/" + "/".join(parts[3:])
    if parts[:2] == ["app", "installations"] and len(parts) == 3:
        return f"{method} /app/installations/{{id}}"
    return f"{method} /{'/'.join(parts)}"


if __name__ == "__main__":
    sys.exit(main())

"""`ghcr2ecr demo`: the whole flow on this machine, with nothing outside it.

A GHCR stand-in (docker-registry behind a GHCR-like token endpoint), an ECR stand-in (docker-registry with
ECR's `AWS:<password>` Basic login, the password being the one moto's GetAuthorizationToken hands out), a
moto server for SSM, SQS, CodeBuild, Secrets Manager and ECR, and a GitHub API stand-in. The App runs in
Chalice's local HTTP server; the build runs the buildspec's own commands, as CodeBuild would. Two releases go
through the flow, the second sharing the first's base layers: its build must copy only what ECR lacks. Last, a
private package of an owner with no read credential in AWS (GHCR denies the App's installation token) is mirrored
by the workflow hand-off: action.yml's step runs as the runner would run it, with an Actions ID-token stand-in.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import httpx

from chalicelib.values import human_size
from standins import codebuild, images, skopeo
from standins.aws import ACCOUNT_ID, MotoServer, apply_aws_environment
from standins.deliveries import multi_platform_burst
from standins.ghcr_ecr import EcrStandin, GhcrStandin, push_to, start_ghcr
from standins.github import DEFAULT_PERMISSIONS, GitHubStandIn
from standins.oidc import Job as ActionsJob
from standins.oidc import OidcIssuer
from standins.registry import BasicAuth, RegistryProcess
from standins.tokens import PULL, Credential, Principal

ROOT = Path(__file__).resolve().parent.parent
APP_ID = 4242
INSTALLATION_ID = 7
OWNER, OWNER_ID, PACKAGE, TAG = "Octo-Org", 1001, "hello-world", "v1.0.0"
REVISION = "3f786850e387550fdab836ed7e6dc881de23001b"  # the commit CI built the image from
TAG_2, REVISION_2 = "v1.1.0", "89e6c98d92887913cadf06b2adb97f26cde4849b"  # the next release, on a later commit
# Each platform's base layer is shared by both releases; at 2 MiB its HEAD's Content-Length is far over the
# 64 KiB a small body may take, the shape of the bug that failed every release after the first.
BASE_SIZE, SHARED_SIZE, OWN_SIZE = 2 << 20, 256 << 10, 128 << 10
REPORT_BUCKET = "ghcr2ecr-demo-reports"
STAGE_PREFIX = "ghcr2ecr-demo"
# The workflow hand-off: another organization's private package, with no read credential in AWS
PRIVATE_OWNER, PRIVATE_OWNER_ID, PRIVATE_INSTALLATION_ID = "Acme-Labs", 1002, 8
PRIVATE_PACKAGE, PRIVATE_TAG, PRIVATE_REPOSITORY_ID = "private-api", "v2.0.0", 2002
PRIVATE_REVISION = "c3499c2729730a7f807efb8676a92dcb6f8a3f8f"  # the commit its release job built
ACTION = ROOT / "action.yml"
STEP_SECONDS = 120  # the action step's own wait is timeout-minutes (15); the demo's copy takes seconds


class DemoFailure(RuntimeError):
    """A step of the demo did not have the expected effect."""


@dataclass(frozen=True)
class Release:
    """One release CI pushes: the multi-platform index, its cosign signature, its tag and commit."""

    tag: str
    revision: str
    image: images.Manifest
    signature: images.Manifest

    def blobs(self) -> dict[str, images.Blob]:
        """Return every distinct blob of the image and its signature by digest."""
        return {**self.image.all_blobs(), **self.signature.all_blobs()}


class Demo:
    """One run of the flow; every stand-in it starts is stopped by `stack`."""

    def __init__(self, workdir: Path, stack: contextlib.ExitStack, out: TextIO | None = None) -> None:
        self.workdir, self.stack = workdir, stack
        self.out = out or sys.stdout  # the readable steps; logs go to stderr (main)
        self.started = time.monotonic()

    def step(self, text: str) -> None:
        """Print one step with the time since the demo started."""
        print(f"[{time.monotonic() - self.started:6.2f}s] {text}", file=self.out, flush=True)

    def run(self) -> None:
        """Run every step in order; raise DemoFailure on the first unexpected effect."""
        self.start_standins()
        self.provision_aws()
        first_image, second_image = images.release_series("demo", 2, base_size=BASE_SIZE, shared_size=SHARED_SIZE,
                                                          own_size=OWN_SIZE)
        first = Release(TAG, REVISION, first_image, images.cosign_signature(first_image))
        second = Release(TAG_2, REVISION_2, second_image, images.cosign_signature(second_image))
        self.publish_image(first)
        server_url = self.start_app()
        self.mirror(server_url, first)
        self.publish_image(second, first)
        report = self.mirror(server_url, second)
        self.check_incremental(second, first, report)
        self.hand_off_private(server_url)

    def mirror(self, url: str, release: Release) -> dict[str, Any]:
        """Take one release from its deliveries to ECR; return the build's report of its package."""
        delivered_at = time.monotonic()
        try:
            self.send_burst(url, release)
            build = self.dispatch_queue()
            self.run_build(build)
            report = self.build_report()
            self.finish_build(build)
            self.show_check_run(release)
            self.verify(release)
        except DemoFailure as exc:
            raise DemoFailure(f"{PACKAGE}:{release.tag}: {exc}") from None
        self.step(f"done: {PACKAGE}:{release.tag} went from delivery to ECR in "
                  f"{time.monotonic() - delivered_at:.2f}s, identical digests on both sides")
        return report

    # -- the world -------------------------------------------------------------------------------------------

    def start_standins(self) -> None:
        """Start the registries, the moto server and the GitHub stand-in on loopback."""
        self.ghcr: GhcrStandin = self.stack.enter_context(start_ghcr(self.workdir / "ghcr"))
        # ECR's login is `AWS:<GetAuthorizationToken password>`; moto's password is `<account>-auth-token`
        login = Credential("AWS", f"{ACCOUNT_ID}-auth-token")
        ecr_registry = RegistryProcess(self.workdir / "ecr", BasicAuth((login,)), "ecr").start()
        self.ecr = self.stack.enter_context(EcrStandin(ecr_registry, login))
        self.moto_url: str = self.stack.enter_context(MotoServer())
        self.github: GitHubStandIn = self.stack.enter_context(GitHubStandIn(app_id=APP_ID))
        # an installation that accepted the App's permissions, the two reporting writes included (manifest.yml)
        self.github.add_installation(INSTALLATION_ID, OWNER, OWNER_ID, repositories=["hello-world"],
                                     permissions={**DEFAULT_PERMISSIONS, "checks": "write",
                                                  "artifact_metadata": "write"})
        self.github.set_repo_variables(OWNER.lower(), "hello-world", {"GHCR2ECR_TAGS": "v*,latest,!*-rc*"})
        self.step(f"stand-ins up: GHCR {self.ghcr.url}, ECR {self.ecr.url}, moto {self.moto_url}, "
                  f"GitHub API {self.github.url}")

    def provision_aws(self) -> None:
        """Create what `ghcr2ecr deploy` would: queue, project, App secrets, the operator's read credential."""
        import boto3

        env = os.environ
        apply_aws_environment(self.moto_url, env)
        self.secret = os.urandom(24).hex().encode()
        ssm = boto3.client("ssm")
        ssm.put_parameter(Name="/ghcr2ecr/github/private-key", Type="SecureString",
                          Value=self.github.private_key_pem)
        ssm.put_parameter(Name="/ghcr2ecr/github/webhook-secret", Type="SecureString", Value=self.secret.decode())
        queue = boto3.client("sqs").create_queue(
            QueueName=f"{STAGE_PREFIX}-sync.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false", "VisibilityTimeout": "360"})
        self.queue_url = queue["QueueUrl"]
        boto3.client("s3").create_bucket(Bucket=REPORT_BUCKET)
        boto3.client("codebuild").create_project(
            name=f"{STAGE_PREFIX}-copy", source={"type": "S3", "location": "bundle/ghcr2ecr.zip"},
            artifacts={"type": "NO_ARTIFACTS"}, serviceRole=f"arn:aws:iam::{ACCOUNT_ID}:role/ghcr2ecr-copy",
            environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0",
                         "computeType": "BUILD_GENERAL1_SMALL"})
        # GHCR denies App tokens on private images today (FACTS.md §3): the operator's read credential in AWS
        fallback = self.ghcr.fallback
        boto3.client("secretsmanager").create_secret(
            Name=f"ghcr2ecr/ghcr-pull/{OWNER_ID}",
            SecretString=json.dumps({"username": fallback.username, "accessToken": fallback.password}))
        env.update({
            "GITHUB_APP_ID": str(APP_ID), "GITHUB_API_URL": self.github.url, "ALLOWED_ACCOUNTS": OWNER.lower(),
            "SYNC_QUEUE_URL": self.queue_url, "SYNC_QUEUE_NAME": f"{STAGE_PREFIX}-sync.fifo",
            "CODEBUILD_PROJECT": f"{STAGE_PREFIX}-copy", "GHCR_REGISTRY": self.ghcr.url,
            "ECR_REGISTRY": self.ecr.url, "POWERTOOLS_SERVICE_NAME": "ghcr2ecr", "REPORT_BUCKET": REPORT_BUCKET,
        })
        self.step("AWS resources in moto: App key and webhook secret (SSM SecureString), FIFO sync queue, "
                  f"copy project, report bucket, read credential ghcr2ecr/ghcr-pull/{OWNER_ID} (Secrets Manager)")

    def publish_image(self, release: Release, previous: Release | None = None) -> None:
        """Push a three-platform release and its cosign signature to the GHCR stand-in, as CI would."""
        image = release.image
        push_to(self.ghcr, f"{OWNER.lower()}/{PACKAGE}", image, (release.tag,))
        push_to(self.ghcr, f"{OWNER.lower()}/{PACKAGE}", release.signature, (images.signature_tag(image.digest),))
        blobs = image.all_blobs()
        shared = f", {len(blobs.keys() & previous.image.all_blobs().keys())} of them shared with {previous.tag} " \
            "(its base layers)" if previous else ""
        size = human_size(sum(b.size for b in blobs.values()))
        self.step(f"CI pushed {OWNER.lower()}/{PACKAGE}:{release.tag} to GHCR: index {image.digest[:19]}… with "
                  f"{len(image.children)} platforms, {len(blobs)} blobs ({size})"
                  f"{shared}, and its cosign signature")

    # -- the App ---------------------------------------------------------------------------------------------

    def start_app(self) -> str:
        """Serve app.py over HTTP with Chalice's local server; record StartBuild (moto drops its overrides)."""
        from chalice.config import Config
        from chalice.local import LocalDevServer

        from chalicelib import aws
        from chalicelib.config import settings

        settings.cache_clear()
        aws.reset()
        self.codebuild = codebuild.RecordingCodeBuild()
        aws.use(aws.CodeBuild, self.codebuild)
        sys.path.insert(0, str(ROOT))
        # app.py wires the names `ghcr2ecr deploy` writes into the stage: the demo's are stage dev's
        os.environ.setdefault("SYNC_QUEUE_NAME", "ghcr2ecr-dev-sync.fifo")
        os.environ.setdefault("CODEBUILD_PROJECT", "ghcr2ecr-dev-copy")
        import app as chalice_app

        self.handlers = chalice_app
        self.app = chalice_app.app
        config = Config.create(chalice_stage="dev", app_name="ghcr2ecr", project_dir=str(ROOT))
        server = LocalDevServer(self.app, config, "127.0.0.1", 0, handler_cls=_quiet_handler())
        thread = threading.Thread(target=server.server.serve_forever, name="chalice-local", daemon=True)
        thread.start()
        self.stack.callback(server.server.server_close)
        self.stack.callback(server.server.shutdown)
        url = f"http://127.0.0.1:{server.server.server_address[1]}"
        self.step(f"App listening at {url}/github/webhook")
        return url

    def send_burst(self, url: str, release: Release) -> None:
        """Send what GitHub sends for one multi-platform push: untagged platform events, then the tagged one."""
        image = release.image
        deliveries = multi_platform_burst(OWNER, OWNER_ID, PACKAGE, image.digest,
                                          [child.digest for child in image.children], release.tag, self.secret,
                                          installation_id=INSTALLATION_ID, repository="hello-world", app_id=APP_ID,
                                          revision=release.revision)
        # a manual redelivery repeats the tagged delivery byte for byte; the FIFO queue's dedup collapses it
        deliveries.append(deliveries[-1])
        with httpx.Client(timeout=10) as client:
            for number, delivery in enumerate(deliveries):
                answer = client.post(f"{url}/github/webhook", content=delivery.body, headers=delivery.headers)
                kind = "redelivery" if number == len(deliveries) - 1 else "delivery"
                self.step(f"{kind} {delivery.delivery_id[:8]} → HTTP {answer.status_code} {answer.text}")
                expected = 200 if number < len(image.children) else 202
                if answer.status_code != expected:
                    raise DemoFailure(f"webhook answered {answer.status_code}, expected {expected}")

    def dispatch_queue(self) -> dict[str, Any]:
        """Feed the queued message to the `dispatch` handler as Lambda's SQS integration would."""
        import boto3

        sqs = boto3.client("sqs")
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                       AttributeNames=["All"], WaitTimeSeconds=1).get("Messages", [])
        if len(messages) != 1:  # two tagged deliveries of one version: the FIFO dedup id collapses them
            raise DemoFailure(f"expected one queued sync, found {len(messages)}")
        self.step("queue: 1 message for the tagged delivery and its redelivery (FIFO deduplication)")
        message, started = messages[0], len(self.codebuild.builds)
        self.feed_dispatch(message)
        if len(self.codebuild.builds) != started + 1:
            raise DemoFailure(f"dispatch started {len(self.codebuild.builds) - started} builds, expected 1")
        build = self.codebuild.builds[-1]
        from chalicelib.build.job import BuildJob

        job = BuildJob.from_variables({v["name"]: v for v in build["variables"]})
        shown = ", ".join([f"destination {job.targets[0].dest}" if job else "no job"] + [
            f"{v['name']}=<{v['type']}>" for v in build["variables"] if v["type"] != "PLAINTEXT"])
        self.step(f"dispatch minted a scoped installation token and started build {build['id']} ({shown})")
        return build

    def feed_dispatch(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """Hand one queue message to `dispatch` as Lambda's SQS integration would; return the App's log lines."""
        import boto3

        event = {"Records": [{
            "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
            "attributes": message.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs", "awsRegion": os.environ["AWS_REGION"],
            "eventSourceARN": f"arn:aws:sqs:{os.environ['AWS_REGION']}:{ACCOUNT_ID}:{STAGE_PREFIX}-sync.fifo",
        }]}
        captured = io.StringIO()
        with _app_logs_to(captured):
            self.handlers.dispatch(event, _LambdaContext("dispatch"))
        sys.stderr.write(captured.getvalue())  # the App's log, apart from the steps, as for every other handler
        boto3.client("sqs").delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        lines = []
        for line in captured.getvalue().splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
        return [line for line in lines if isinstance(line, dict)]

    # -- the build -------------------------------------------------------------------------------------------

    def run_build(self, build: dict[str, Any]) -> None:
        """Run buildspec/buildspec.yml's commands with bash, its variables resolved as CodeBuild resolves them."""
        import boto3

        spec = codebuild.load_buildspec()
        env = dict(os.environ)
        env.update({k: str(v) for k, v in (spec.get("env", {}).get("variables") or {}).items()})
        env.update(codebuild.resolve_variables(build["variables"], boto3.client("ssm"),
                                               boto3.client("secretsmanager")))
        env.update({
            "CODEBUILD_SRC_DIR": str(ROOT), "CODEBUILD_BUILD_ID": build["id"], "TMPDIR": str(self.workdir),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            # the local ECR stand-in is not an *.dkr.ecr.* host: send it down the ECR path (moto) anyway
            "GHCR2ECR_DEST_ECR": "true",
            # the GHCR stand-in's token endpoint has a port of its own (ghcr.io's realm is on ghcr.io itself)
            "GHCR2ECR_TOKEN_REALMS": self.ghcr.tokens.url,
        })
        self.allow_installation_tokens()
        self.step("CodeBuild: running buildspec/buildspec.yml (build phase, then finally)")
        result = codebuild.run_build_phase(spec, env, capture=True)
        sys.stderr.write(result.output)  # the build's own log, apart from the steps
        build["status"] = "FAILED" if result.failed or result.finally_failed else "SUCCEEDED"
        if result.failed or result.finally_failed:
            raise DemoFailure(f"the build's command failed: {result.failed or result.finally_failed}")

    def build_report(self) -> dict[str, Any]:
        """Return the sync report of the job's one package, from the report file the buildspec has run-job write."""
        try:
            job_report = json.loads((self.workdir / "ghcr2ecr-report.json").read_text())
            [package] = job_report["packages"]
            return dict(package["report"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DemoFailure(f"the build's report is missing or unreadable ({type(exc).__name__})") from None

    def allow_installation_tokens(self) -> None:
        """Let minted installation tokens log in to the GHCR stand-in, and be denied private pulls, as on ghcr.io."""
        known = {p.credential.password for p in self.ghcr.tokens.policy.principals}
        for token in (t for t in self.github.tokens if t.value not in known):
            self.ghcr.tokens.policy.principals.append(
                Principal(Credential("x-access-token", token.value), {self.ghcr.public_prefix + "*": PULL}))

    def finish_build(self, build: dict[str, Any]) -> None:
        """Deliver the build's final state change to `on_build_state`, as EventBridge would."""
        import boto3

        token_parameter = next(v["value"] for v in build["variables"] if v["type"] == "PARAMETER_STORE")
        event = {
            "version": "0", "id": "demo-event", "detail-type": "CodeBuild Build State Change",
            "source": "aws.codebuild", "account": ACCOUNT_ID, "time": datetime.now(timezone.utc).isoformat(),
            "region": os.environ["AWS_REGION"], "resources": [build["id"]],
            "detail": codebuild.build_state_detail(build["project"], build["id"], build["status"],
                                                   build["variables"], build["started"]),
        }
        self.handlers.on_build_state(event, _LambdaContext("on_build_state"))
        try:
            boto3.client("ssm").get_parameter(Name=token_parameter)
        except boto3.client("ssm").exceptions.ParameterNotFound:
            pass
        else:
            raise DemoFailure(f"token parameter {token_parameter} is still there after the build ended")
        revoked = [t for t in self.github.tokens if t.revoked]
        self.step(f"build {build['status']}: token parameter deleted, {len(revoked)}/{len(self.github.tokens)} "
                  "installation tokens revoked")
        if len(revoked) != len(self.github.tokens):
            raise DemoFailure("an installation token was not revoked")

    def show_check_run(self, release: Release) -> None:
        """Print the `ghcr2ecr` check run as the tenant sees it on the commit, and the storage record."""
        runs = [r for r in self.github.check_runs.values() if r.head_sha == release.revision]
        if len(runs) != 1 or runs[0].status != "completed" or runs[0].conclusion != "success":
            found = [(r.status, r.conclusion) for r in runs]
            raise DemoFailure(f"expected one successful ghcr2ecr check run, found {found}")
        run = runs[0]
        writers = {frozenset(token.permissions.items()) for _method, token in run.writes}
        self.step(f"GitHub: check run {run.name!r} on {OWNER}/{run.repo}@{run.head_sha[:7]}: {run.conclusion}, "
                  f"written with {len(run.writes)} tokens of checks: write only ({len(writers)} permission set)")
        indent = "           │ "
        print(f"{indent}{run.output.get('title', '')}", file=self.out)
        for line in str(run.output.get("summary", "")).splitlines():
            print(f"{indent}{line}", file=self.out)
        records = [r for r in self.github.storage_records if r.body["digest"] == release.image.digest]
        for record in records:
            self.step(f"GitHub: storage record on {OWNER}'s linked artifacts: {record.body['name']} "
                      f"{record.body['digest'][:19]}… version {record.body.get('version')} in "
                      f"{record.body['registry_url']}/{record.body.get('repository')} "
                      f"(token: {', '.join(f'{k}: {v}' for k, v in sorted(record.token.permissions.items()))})")
        if len(records) != 1:
            raise DemoFailure(f"expected one storage record, found {len(records)}")

    def verify(self, release: Release, repository: str = f"{OWNER.lower()}/{PACKAGE}") -> None:
        """Ask skopeo, the independent oracle, for the digests on both sides: index and every child."""
        image, tag = release.image, release.tag
        source = f"{self.ghcr.host}/{repository}"
        dest = f"{self.ecr.host}/ghcr/{repository}"
        src_digest = skopeo.digest(f"{source}:{tag}", self.ghcr.fallback)
        dst_digest = skopeo.digest(f"{dest}:{tag}", self.ecr.credential)
        if src_digest != dst_digest or src_digest != image.digest:
            raise DemoFailure(f"index digests differ: source {src_digest}, destination {dst_digest}")
        for child in image.children:
            got = skopeo.digest(f"{dest}@{child.digest}", self.ecr.credential)
            if got != child.digest:
                raise DemoFailure(f"child {child.digest} reads back as {got}")
        signature = images.signature_tag(image.digest)
        if skopeo.digest(f"{dest}:{signature}", self.ecr.credential) != skopeo.digest(
                f"{source}:{signature}", self.ghcr.fallback):
            raise DemoFailure(f"the signature tag {signature} differs or is missing in the destination")
        self.step(f"skopeo reads {dst_digest[:19]}… for {dest}:{tag}, the same {len(image.children)} platform "
                  "digests and the same cosign signature as the source")

    def check_incremental(self, release: Release, previous: Release, report: dict[str, Any]) -> None:
        """Print what the build moved for a release next to what ECR already held; fail if it copied any of that."""
        wanted, held = release.blobs(), previous.blobs()
        new = [b for d, b in wanted.items() if d not in held]
        there = [b for d, b in wanted.items() if d in held]
        blobs, moved = report.get("blobs") or {}, int(report.get("bytes_moved") or 0)
        copied, skipped, mounted = (blobs.get(k) for k in ("copied", "skipped", "mounted"))
        self.step(f"{PACKAGE}:{release.tag}, the build's report: {copied} blobs copied, {human_size(moved)} "
                  f"({moved:,} bytes) moved; {skipped} blobs already in ECR, skipped; {mounted} mounted")
        expected = (len(new), len(there), 0, sum(b.size for b in new))
        if (copied, skipped, mounted, moved) != expected:
            raise DemoFailure(f"{PACKAGE}:{release.tag}: the build copied {copied}, skipped {skipped}, mounted "
                              f"{mounted} blobs and moved {moved} bytes; expected {expected[0]} copied ("
                              f"{expected[3]} bytes) and the {expected[1]} blobs ECR already held skipped")
        held_bytes = human_size(sum(b.size for b in there))
        self.step(f"only new content moved: the {len(new)} new blobs of {release.tag} and its signature "
                  f"({human_size(expected[3])}); {previous.tag}'s {len(there)} base layers ({held_bytes}, already in "
                  "ECR) "
                  "were HEADed, not copied again")

    # -- the workflow hand-off -------------------------------------------------------------------------------

    def hand_off_private(self, url: str) -> None:
        """Mirror a private package GHCR denies the App through action.yml's step; fail unless it arrives identical."""
        image = images.multi_platform_index("private-api")
        release = Release(PRIVATE_TAG, PRIVATE_REVISION, image, images.cosign_signature(image))
        repository = f"{PRIVATE_OWNER.lower()}/{PRIVATE_PACKAGE}"
        try:
            self.enable_handoffs(url)
            self.publish_private(release, repository)
            self.show_installation_token_denied(release, repository)
            self.send_private_event(url, release)
            handed_at = time.monotonic()
            job_token = self.ghcr.job_token(f"{PRIVATE_OWNER.lower()}/*")  # packages: read, this job's owner
            step = ActionStep.start(self.workdir, release, repository, job_token, self.audience, self.oidc)
            try:
                build = self.dispatch_handoff(step)
                requests_before = len(self.ghcr.token_requests(repository))
                self.run_build(build)
                self.finish_build(build)
                self.check_job_token_gone(build)
                outputs = self.finish_step(step)
            finally:
                step.stop()
            self.check_no_personal_credential(build, repository, requests_before)
            self.verify(release, repository)
        except DemoFailure as exc:
            raise DemoFailure(f"hand-off of {repository}:{PRIVATE_TAG}: {exc}") from None
        self.step(f"done: {repository}:{PRIVATE_TAG}, private, went from the workflow step to ECR in "
                  f"{time.monotonic() - handed_at:.2f}s with the job's own token: identical digests on both sides, "
                  f"the step's output image {outputs['image'].split('@')[0]}@{release.image.digest[:19]}…")

    def enable_handoffs(self, url: str) -> None:
        """Turn hand-offs on as `ghcr2ecr deploy` does, with an Actions ID-token stand-in; install the App there."""
        from chalicelib.config import settings
        from chalicelib.handoff.verify import verifier_for

        # The action's default audience is its `url` exactly as typed: deploy prints the API URL Chalice records,
        # with its trailing slash, and makes that HANDOFF_AUDIENCE.
        self.audience = f"{url}/"
        job = ActionsJob(repository=f"{PRIVATE_OWNER}/{PRIVATE_PACKAGE}", repository_id=PRIVATE_REPOSITORY_ID,
                         repository_owner_id=PRIVATE_OWNER_ID, ref=f"refs/tags/{PRIVATE_TAG}", sha=PRIVATE_REVISION,
                         workflow="release", run_id=9001, actor="acme-dev", actor_id=3002, visibility="private")
        self.oidc: OidcIssuer = self.stack.enter_context(OidcIssuer(job=job))
        self.github.add_installation(PRIVATE_INSTALLATION_ID, PRIVATE_OWNER, PRIVATE_OWNER_ID,
                                     repositories=[PRIVATE_PACKAGE], permissions={
                                         **DEFAULT_PERMISSIONS, "checks": "write", "artifact_metadata": "write"})
        # No read credential in AWS for this owner: only hand-offs can mirror its private package, so it says so
        self.github.set_repo_variables(PRIVATE_OWNER.lower(), PRIVATE_PACKAGE, {"GHCR2ECR_HANDOFF": "only"})
        os.environ.update({"HANDOFF_AUDIENCE": self.audience, "OIDC_ISSUER": self.oidc.issuer,
                           "ALLOWED_ACCOUNTS": f"{os.environ['ALLOWED_ACCOUNTS']},{PRIVATE_OWNER.lower()}"})
        settings.cache_clear()
        verifier_for.cache_clear()
        self.step(f"hand-offs on, as ghcr2ecr deploy sets them: HANDOFF_AUDIENCE={self.audience} (the App's URL), "
                  f"OIDC_ISSUER={self.oidc.issuer} (an Actions ID-token stand-in); {PRIVATE_OWNER} installed the App "
                  f"and set GHCR2ECR_HANDOFF=only on {PRIVATE_OWNER}/{PRIVATE_PACKAGE}")

    def publish_private(self, release: Release, repository: str) -> None:
        """Push the private release; check that AWS holds no read credential for its owner."""
        import boto3

        push_to(self.ghcr, repository, release.image, (release.tag,))
        push_to(self.ghcr, repository, release.signature, (images.signature_tag(release.image.digest),))
        secret = f"ghcr2ecr/ghcr-pull/{PRIVATE_OWNER_ID}"
        manager = boto3.client("secretsmanager")
        try:
            manager.describe_secret(SecretId=secret)
        except manager.exceptions.ResourceNotFoundException:
            pass
        else:
            raise DemoFailure(f"Secrets Manager holds {secret}: the hand-off must do without a fallback secret")
        self.step(f"CI of {PRIVATE_OWNER}/{PRIVATE_PACKAGE} pushed {repository}:{release.tag} to GHCR, a private "
                  f"package: index {release.image.digest[:19]}… with {len(release.image.children)} platforms and its "
                  f"cosign signature; Secrets Manager holds no {secret} (no read credential in AWS)")

    def show_installation_token_denied(self, release: Release, repository: str) -> None:
        """Show GHCR denying the App's installation token the private image, as ghcr.io does (FACTS.md §3)."""
        from chalicelib.github.client import github_app

        app = github_app()
        token = app.mint_token(PRIVATE_INSTALLATION_ID, [PRIVATE_PACKAGE], {"packages": "read", "metadata": "read"})
        self.allow_installation_tokens()
        try:
            skopeo.digest(f"{self.ghcr.host}/{repository}:{release.tag}", Credential("x-access-token", token.value))
        except skopeo.SkopeoError as exc:
            if "403 (Forbidden)" not in str(exc):  # ghcr.io's token endpoint answers 403 DENIED (the stand-in's too)
                raise DemoFailure(f"GHCR refused the installation token otherwise than with denied: {exc}") from None
        else:
            raise DemoFailure("GHCR let the App's installation token pull a private image")
        finally:
            app.revoke(token)
        self.step(f"GHCR denies an installation token of the App (packages: read, {PRIVATE_OWNER}/{PRIVATE_PACKAGE}) "
                  f"on {repository}: its token endpoint answers 403 denied, as ghcr.io does for private images")

    def send_private_event(self, url: str, release: Release) -> None:
        """Deliver the push's tagged registry_package event; dispatch must start nothing (GHCR2ECR_HANDOFF=only)."""
        import boto3

        deliveries = multi_platform_burst(PRIVATE_OWNER, PRIVATE_OWNER_ID, PRIVATE_PACKAGE, release.image.digest,
                                          [child.digest for child in release.image.children], release.tag,
                                          self.secret, installation_id=PRIVATE_INSTALLATION_ID,
                                          repository=PRIVATE_PACKAGE, app_id=APP_ID, revision=release.revision)
        delivery = deliveries[-1]  # the tagged index's; the untagged platform events are ignored as before
        answer = httpx.post(f"{url}/github/webhook", content=delivery.body, headers=delivery.headers, timeout=10)
        if answer.status_code != 202:
            raise DemoFailure(f"the push's event was answered {answer.status_code}, expected 202")
        messages = boto3.client("sqs").receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                       WaitTimeSeconds=1).get("Messages", [])
        if len(messages) != 1:
            raise DemoFailure(f"expected the event's one queued sync, found {len(messages)}")
        started = len(self.codebuild.builds)
        lines = self.feed_dispatch(messages[0])
        skipped = [line for line in lines if line.get("message") == "sync skipped"]
        if len(self.codebuild.builds) != started or not skipped or skipped[0].get("code") != "handoff_only":
            raise DemoFailure(f"dispatch did not skip the event as GHCR2ECR_HANDOFF=only says ({skipped})")
        self.step(f"delivery {delivery.delivery_id[:8]} (the push's tagged event) → HTTP 202; dispatch starts no "
                  f"build: {skipped[0].get('reason')}")

    def dispatch_handoff(self, step: ActionStep) -> dict[str, Any]:
        """Wait for the step's hand-off on the queue, then let `dispatch` start its build."""
        import boto3

        from chalicelib.jobs import Job

        sqs, deadline = boto3.client("sqs"), time.monotonic() + 60
        messages: list[dict[str, Any]] = []
        while not messages:
            if step.process.poll() is not None or time.monotonic() > deadline:
                raise DemoFailure(f"the step queued no hand-off; it said:\n{step.log()}")
            messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=1).get("Messages", [])
        if len(messages) != 1 or step.token.password in messages[0]["Body"]:
            raise DemoFailure("expected one queued hand-off holding no credential")
        job = Job.from_json(messages[0]["Body"])
        self.step(f"the workflow step (action.yml, run by bash as the runner runs it) handed "
                  f"ghcr.io/{step.repository}@{step.digest[:19]}… over with an ID token of {PRIVATE_OWNER}/"
                  f"{PRIVATE_PACKAGE} for {self.audience}: POST /github/handoff → 202, hand-off {job.correlation_id}; "
                  "the job's token is in SSM, the queued job holds none")
        started = len(self.codebuild.builds)
        self.feed_dispatch(messages[0])
        if len(self.codebuild.builds) != started + 1:
            raise DemoFailure(f"dispatch started {len(self.codebuild.builds) - started} builds, expected 1")
        build = self.codebuild.builds[-1]
        references = {v["name"]: v["type"] for v in build["variables"] if v["type"] != "PLAINTEXT"}
        if "SECRETS_MANAGER" in references.values():
            raise DemoFailure(f"the build was handed a fallback secret ({references})")
        shown = ", ".join(f"{name}=<{kind}>" for name, kind in references.items())
        self.step(f"dispatch found {PRIVATE_OWNER}'s installation and started build {build['id']} ({shown}: the "
                  "job's token first, the installation token apart; no fallback secret)")
        return build

    def check_job_token_gone(self, build: dict[str, Any]) -> None:
        """Check that every token parameter of the hand-off's build is deleted, the job token's included."""
        import boto3

        ssm = boto3.client("ssm")
        for name in (v["value"] for v in build["variables"] if v["type"] == "PARAMETER_STORE"):
            with contextlib.suppress(ssm.exceptions.ParameterNotFound):
                ssm.get_parameter(Name=name)
                raise DemoFailure(f"token parameter {name} is still there after the build ended")
        self.step("the job token's parameter is deleted as well; ghcr2ecr never revokes that token (its job's "
                  "later steps still use it)")

    def finish_step(self, step: ActionStep) -> dict[str, str]:
        """Wait for the workflow step to end; print its log and outputs as the run's page shows them."""
        try:
            step.process.wait(timeout=STEP_SECONDS)
        except subprocess.TimeoutExpired:
            raise DemoFailure(f"the workflow step did not end within {STEP_SECONDS}s") from None
        log, outputs = step.log(), step.outputs()
        if step.token.password in log or any(token in log for token in self.oidc.minted):
            raise DemoFailure("the step printed a token outside its ::add-mask:: commands")
        self.step(f"the workflow step ended (exit {step.process.returncode}); its log and summary, as the run's page "
                  "shows them:")
        for line in [*log.splitlines(), "", *step.summary_file.read_text().splitlines()]:
            print(f"           │ {line}", file=self.out)
        self.step(f"the step's outputs: status={outputs.get('status')}, image={outputs.get('image')}, "
                  f"tags={outputs.get('tags')}")
        expected = f"{self.ecr.host}/ghcr/{step.repository}@{step.digest}"
        if step.process.returncode != 0 or outputs.get("status") != "succeeded" or outputs.get("image") != expected:
            raise DemoFailure(f"the step ended {step.process.returncode} with outputs {outputs}, expected succeeded "
                              f"and {expected}")
        return outputs

    def check_no_personal_credential(self, build: dict[str, Any], repository: str, before: int) -> None:
        """Check that the build pulled with the job's token alone: no personal, pusher or fallback login at GHCR."""
        during = self.ghcr.token_requests(repository)[before:]
        logins = {request.username for request in during}
        pulled = [r for r in during if r.status == 200 and any("pull" in actions for _, actions in r.granted)]
        if logins != {"x-access-token"} or not pulled:
            raise DemoFailure(f"the build logged in to GHCR as {sorted(map(str, logins))}, expected the job's "
                              "x-access-token only")
        self.step(f"no PAT or fallback secret used: the build logged in to GHCR for {repository} {len(during)} "
                  "time(s), each with the job's token (x-access-token, pull granted), never as fallback-reader or "
                  "pusher; it had no SECRETS_MANAGER variable, and no secret exists for the owner")


@dataclass
class ActionStep:
    """action.yml's one composite step, run as the runner runs it: bash, INPUT_* from action.yml, its files."""

    process: subprocess.Popen[str]
    token: Credential
    image: str
    repository: str
    digest: str
    output_file: Path
    summary_file: Path
    printed: str = field(default="", init=False)

    @classmethod
    def start(cls, workdir: Path, release: Release, repository: str, token: Credential, url: str,
              oidc: OidcIssuer) -> ActionStep:
        """Start the step for `release` with `url` as typed and the job's token, in an environment like the runner's."""
        import yaml

        action = yaml.safe_load(ACTION.read_text())
        inputs = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
        image = f"ghcr.io/{repository}@{release.image.digest}"
        # the workflow's `with:` (url, image); `token` keeps its default, `${{ github.token }}`: the job's token
        inputs.update({"url": url, "image": image, "token": token.password})
        [step] = action["runs"]["steps"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
               "GITHUB_OUTPUT": str(workdir / "github_output"), "GITHUB_STEP_SUMMARY": str(workdir / "step_summary"),
               **oidc.actions_env()}
        for variable, expression in step["env"].items():  # INPUT_URL: ${{ inputs.url }}, ...
            named = re.fullmatch(r"\$\{\{ inputs\.([a-z-]+) \}\}", expression)
            if named is None:
                raise DemoFailure(f"action.yml's step sets {variable} from {expression!r}, not from an input")
            env[variable] = inputs[named[1]]
        run = step["run"].replace("${{ github.action_path }}", str(ACTION.parent))
        for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
            Path(env[name]).write_text("")
        process = subprocess.Popen(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", run], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   stdin=subprocess.DEVNULL)
        return cls(process, token, image, repository, release.image.digest, Path(env["GITHUB_OUTPUT"]),
                   Path(env["GITHUB_STEP_SUMMARY"]))

    def log(self) -> str:
        """Return what the step printed once it ended, without the ::add-mask:: commands the runner consumes."""
        if self.process.poll() is not None and self.process.stdout is not None and not self.process.stdout.closed:
            self.printed = self.process.stdout.read()
            self.process.stdout.close()
        return "\n".join(line for line in self.printed.splitlines() if not line.startswith("::add-mask::"))

    def outputs(self) -> dict[str, str]:
        """Parse the step's outputs from GITHUB_OUTPUT (`name<<delimiter`, value, delimiter)."""
        found, lines = {}, self.output_file.read_text().splitlines()
        index = 0
        while index < len(lines):
            name, _, delimiter = lines[index].partition("<<")
            end = lines.index(delimiter, index + 1)
            found[name] = "\n".join(lines[index + 1:end])
            index = end + 1
        return found

    def stop(self) -> None:
        """End the step if it still runs."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def _app_logs_to(stream: TextIO) -> Iterator[None]:
    """Send the App's log lines (powertools' handler holds the stdout of its creation) to `stream` for a while."""
    from chalicelib import logs

    handlers = [h for h in logs.logger._logger.handlers if isinstance(h, logging.StreamHandler)]
    saved = [h.stream for h in handlers]
    for handler in handlers:
        handler.setStream(stream)
    try:
        yield
    finally:
        for handler, previous in zip(handlers, saved):
            handler.setStream(previous)


def _quiet_handler() -> type:
    """Return Chalice's local request handler without its per-request access-log line."""
    from chalice.local import ChaliceRequestHandler

    class Quiet(ChaliceRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Drop the access log; the App's own JSON log lines say what happened."""

    return Quiet


class _LambdaContext:
    """The few attributes of a Lambda context that handlers and powertools read."""

    def __init__(self, name: str) -> None:
        self.function_name = f"ghcr2ecr-dev-{name}"
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{self.function_name}"
        self.memory_limit_in_mb = 256
        self.aws_request_id = f"demo-{name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "demo"

    def get_remaining_time_in_millis(self) -> int:
        """Pretend a full minute is left."""
        return 60_000


def main(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when both releases arrived identical, 1 with the failing step otherwise."""
    for tool in ("docker-registry", "skopeo"):
        if shutil.which(tool) is None:
            print(f"demo: {tool} is not installed (run bash .ci/setup)", file=sys.stderr)
            return 1
    workdir = Path(tempfile.mkdtemp(prefix="ghcr2ecr-demo-"))
    saved = dict(os.environ)
    steps = sys.stdout
    try:
        # Readable steps on stdout; the App's JSON log lines, its EMF metric lines (printed) and the build's
        # output on stderr: `ghcr2ecr demo 2>/dev/null` shows the steps alone.
        with contextlib.ExitStack() as stack, contextlib.redirect_stdout(sys.stderr), _app_logs_to(sys.stderr):
            Demo(workdir, stack, out=steps).run()
        return 0
    except DemoFailure as exc:
        print(f"demo FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if args.keep:
            print(f"demo: files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

"""Helpers for hand-off tests that run the real thing: a private image, a job token, builds run as CodeBuild would.

The App runs on moto + the GitHub stand-in (tests.support.app_fixtures); the image lives in the GHCR stand-in,
where only the job's token may pull it; each started build runs `run-job`'s own code with its variables resolved
from SSM, then the buildspec's `finally` (revoke-token, store-report), then its final state event is built for
on_build_state. `Cloud` plays SQS, CodeBuild and EventBridge in a thread, for an App served over HTTP.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from chalicelib import aws
from chalicelib.build import report_store, revoke_token, run_job
from chalicelib.build.contract import REPORT_BUCKET
from chalicelib.build.job import BuildJob
from chalicelib.config import settings
from chalicelib.handoff.verify import verifier_for
from standins.aws import ACCOUNT_ID, restored_environ
from standins.codebuild import build_state_detail, resolve_variables
from standins.ghcr_ecr import EcrStandin, GhcrStandin
from standins.oidc import OidcIssuer
from standins.tokens import PULL, Credential, Principal
from tests.support.app_fixtures import PROJECT, QUEUE_NAME, AppEnv, clear_caches
from tests.support.engine_helpers import FAST_RETRY, Sleeps

BUCKET = "ghcr2ecr-test-reports"
DELETE_TOKEN = ("DELETE", "/installation/token")


@pytest.fixture
def private_world(app_env: AppEnv, ghcr: GhcrStandin, moto_ecr: EcrStandin,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[AppEnv]:
    """app_env copying from the GHCR stand-in to the ECR stand-in, with a report bucket and no fallback secret."""
    monkeypatch.setenv("GHCR_REGISTRY", ghcr.url)
    monkeypatch.setenv("ECR_REGISTRY", moto_ecr.url)
    monkeypatch.setenv("REPORT_BUCKET", BUCKET)
    clear_caches()
    aws.use(aws.CodeBuild, app_env.codebuild)
    aws.use(aws.Sqs, app_env.sqs)
    app_env.boto("s3").create_bucket(Bucket=BUCKET)
    verifier_for.cache_clear()
    yield app_env
    verifier_for.cache_clear()


def open_hand_offs(monkeypatch: pytest.MonkeyPatch, issuer: OidcIssuer, audience: str) -> None:
    """Turn hand-offs on: HANDOFF_AUDIENCE and the issuer stand-in as OIDC_ISSUER."""
    monkeypatch.setenv("HANDOFF_AUDIENCE", audience)
    monkeypatch.setenv("OIDC_ISSUER", issuer.issuer)
    settings.cache_clear()
    verifier_for.cache_clear()


def needles(secret: str, username: str = "x-access-token") -> dict[str, str]:
    """Return a secret, a distinctive inner piece of it and its Basic header value (partial leaks count)."""
    basic = base64.b64encode(f"{username}:{secret}".encode()).decode()
    return {"token": secret, "inner part": secret[8:28], "Basic header": basic}


def leaks(secret: str, places: Mapping[str, str]) -> list[str]:
    """Return `place: needle` for every place whose text holds any needle of `secret`."""
    return [f"{place}: {name}" for place, text in places.items() for name, needle in needles(secret).items()
            if needle in text]


class RevocationLog:
    """The bearer tokens that reached the GitHub stand-in's `DELETE /installation/token` (kept in test memory)."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self._lock = threading.Lock()

    def attach(self, monkeypatch: pytest.MonkeyPatch, github: Any) -> None:
        """Wrap the stand-in's request handling (it records only the kind of credential, never its value)."""
        handle = github.handle

        def recording(method: str, path: str, query: Any, body: Any, authorization: str) -> Any:
            if (method, path.rstrip("/")) == DELETE_TOKEN:
                with self._lock:
                    self.tokens.append(authorization.partition(" ")[2].strip())
            return handle(method, path, query, body, authorization)

        monkeypatch.setattr(github, "handle", recording)


def deny_app_tokens(env: AppEnv, ghcr: GhcrStandin) -> None:
    """Let every minted installation token log in to the GHCR stand-in and pull only `public/` (FACTS.md §3)."""
    known = {p.credential.password for p in ghcr.tokens.policy.principals}
    for token in env.github.tokens:
        if token.value not in known:
            ghcr.tokens.policy.principals.append(
                Principal(Credential("x-access-token", token.value), {ghcr.public_prefix + "*": PULL}))


@contextmanager
def build_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set a build's variables in os.environ one by one (other threads keep every other key), then restore them."""
    with restored_environ(variables):
        os.environ.update(variables)
        yield


@dataclass
class FinishedRun:
    """One build run as CodeBuild would: its record, its run-job report, its final status and state event."""

    build: dict[str, Any]
    report: dict[str, Any]
    status: str
    revoke_exit: int
    event: dict[str, Any]

    @property
    def arn(self) -> str:
        """Return the build's ARN (what the state event names)."""
        return f"arn:aws:codebuild:us-east-1:{ACCOUNT_ID}:build/{self.build['id']}"


def run_build(build: dict[str, Any], ssm: Any, secrets: Any, ghcr: GhcrStandin, workdir: Path) -> FinishedRun:
    """Run one started build as CodeBuild runs buildspec/buildspec.yml: run-job, then revoke-token and store-report."""
    variables = resolve_variables(build["variables"], ssm, secrets)  # PARAMETER_STORE names read at build start
    job = BuildJob.from_json(variables["GHCR2ECR_JOB"])
    build_vars = {**variables, "CODEBUILD_BUILD_ID": build["id"],
                  # the support stack's project settings: the ECR path on a loopback registry, its token realm
                  "GHCR2ECR_DEST_ECR": "true", "GHCR2ECR_TOKEN_REALMS": ghcr.tokens.url}
    results = run_job.run(job, {**os.environ, **build_vars}, retry=FAST_RETRY, sleep=Sleeps())
    report = run_job.job_report(job, results)
    path = workdir / f"report-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    with build_environment(build_vars):  # the buildspec's `finally`, in the build's environment
        revoke_exit = revoke_token.main(argparse.Namespace(github_api_url=None))
        stored = report_store.main(argparse.Namespace(file=str(path)))
    assert stored == 0 and variables.get(REPORT_BUCKET), "store-report did not store the build's report"
    status = "SUCCEEDED" if report["ok"] else "FAILED"  # run-job's exit status decides the build phase
    arn = f"arn:aws:codebuild:us-east-1:{ACCOUNT_ID}:build/{build['id']}"
    event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "CodeBuild Build State Change",
             "source": "aws.codebuild", "account": ACCOUNT_ID,
             "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "us-east-1",
             "resources": [arn], "detail": build_state_detail(PROJECT, arn, status, build["variables"],
                                                                build.get("started"))}
    return FinishedRun(build, report, status, revoke_exit, event)


class LambdaContext:
    """The few attributes of a Lambda context that handlers and powertools read."""

    def __init__(self, name: str) -> None:
        self.function_name = f"ghcr2ecr-test-{name}"
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{self.function_name}"
        self.memory_limit_in_mb = 256
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        """Pretend a full minute is left."""
        return 60_000


@dataclass
class Cloud:
    """SQS, CodeBuild and EventBridge in one thread: dispatch each queued message, run each started build, deliver
    its final state to on_build_state. Clients are made before the thread starts (boto3 sessions are not
    thread-safe); `errors` holds what went wrong, `runs` every finished build."""

    env: AppEnv
    ghcr: GhcrStandin
    handlers: Any  # the app module
    workdir: Path
    make_sqs_event: Callable[[str], dict[str, Any]]
    poll_seconds: float = 0.05
    runs: list[FinishedRun] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dispatched: int = 0

    def __post_init__(self) -> None:
        self._sqs, self._ssm, self._secrets = (self.env.boto(name) for name in ("sqs", "ssm", "secretsmanager"))
        for seam in (aws.ssm, aws.s3, aws.sqs, aws.secrets_manager, aws.codebuild):  # the App's clients, made here
            seam()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cloud", daemon=True)

    def __enter__(self) -> Cloud:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        started = 0
        while not self._stop.is_set():
            try:
                self._dispatch_queued()
                builds = self.env.codebuild.builds
                while started < len(builds):
                    self._finish(builds[started])
                    started += 1
            except Exception as exc:  # reported to the test, which fails on it
                self.errors.append("".join(traceback.format_exception(exc)))
                return
            self._stop.wait(self.poll_seconds)

    def _dispatch_queued(self) -> None:
        """Receive and invoke dispatch as Lambda's SQS integration does (batch size 1), deleting on success."""
        messages = self._sqs.receive_message(QueueUrl=self.env.queue_url, MaxNumberOfMessages=1,
                                             AttributeNames=["All"]).get("Messages", [])
        for message in messages:
            self.handlers.dispatch(self.make_sqs_event(message["Body"]), LambdaContext("dispatch"))
            self._sqs.delete_message(QueueUrl=self.env.queue_url, ReceiptHandle=message["ReceiptHandle"])
            self.dispatched += 1

    def _finish(self, build: dict[str, Any]) -> None:
        deny_app_tokens(self.env, self.ghcr)
        run = run_build(build, self._ssm, self._secrets, self.ghcr, self.workdir)
        self.handlers.on_build_state(run.event, LambdaContext("on_build_state"))
        self.runs.append(run)


def sqs_event_maker(client: Any) -> Callable[[str], dict[str, Any]]:
    """Return how the Chalice test client shapes an SQS event of one message body for the sync queue."""
    return lambda body: client.events.generate_sqs_event([body], queue_name=QUEUE_NAME)

"""Fixtures for the App: a moto server over HTTP, the GitHub stand-in, signed deliveries, recording seams.

`app_env` gives a fully wired deployment: SSM holds the App key and webhook secret, an SQS FIFO queue with a
dead-letter queue, a CodeBuild project, and the environment of `.chalice/config.json` pointing at them.
StartBuild goes to moto through `RecordingCodeBuild`, which keeps the arguments (moto ignores overrides).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib import aws, logs
from chalicelib.config import settings
from chalicelib.webhook.events import sign
from standins.aws import ACCOUNT_ID, MotoServer, aws_variables, reset
from standins.codebuild import RecordingCodeBuild, build_state_detail
from standins.github import GitHubStandIn

DELIVERIES = Path(__file__).resolve().parent.parent / "fixtures" / "deliveries"
WEBHOOK_SECRET = "It's a Secret to Everybody, test edition"
APP_ID = 4242
QUEUE_NAME = "ghcr2ecr-test-sync.fifo"
PROJECT = "ghcr2ecr-test-copy"
KEY_PARAMETER = "/ghcr2ecr/github/private-key"
SECRET_PARAMETER = "/ghcr2ecr/github/webhook-secret"
TOKEN_PREFIX = "/ghcr2ecr/tokens/"
# installation id -> (login, account id, target type): the accounts of tests/fixtures/deliveries
INSTALLATIONS = {
    77: ("octo-org", 1001, "Organization"),
    78: ("Mixed-Case-Org", 1002, "Organization"),
    79: ("Jane-Dev", 2001, "User"),
    666: ("evil-corp", 6666, "Organization"),
}


@dataclass(frozen=True)
class Delivery:
    """A recorded delivery: event name, delivery GUID and the raw body GitHub would send."""

    name: str
    event: str
    delivery: str
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        """Return the parsed body."""
        return json.loads(self.body)

    def headers(self, secret: str = WEBHOOK_SECRET, **extra: str) -> dict[str, str]:
        """Return GitHub's headers for this delivery, signed with `secret`."""
        return {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/a1b2c3d",
            "X-GitHub-Event": self.event,
            "X-GitHub-Delivery": self.delivery,
            "X-GitHub-Hook-ID": "512345678",
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-GitHub-Hook-Installation-Target-ID": str(APP_ID),
            "X-Hub-Signature-256": sign(secret.encode(), self.body),
            **extra,
        }

    def with_payload(self, payload: dict[str, Any], delivery: str | None = None) -> Delivery:
        """Return a copy with another body (and optionally another delivery GUID)."""
        return Delivery(self.name, self.event, delivery or self.delivery, json.dumps(payload).encode())


def load_delivery(name: str) -> Delivery:
    """Load tests/fixtures/deliveries/<name>.json; the body is the payload as GitHub serializes it."""
    data = json.loads((DELIVERIES / f"{name}.json").read_text())
    return Delivery(name, data["event"], data["delivery"], json.dumps(data["payload"]).encode())


@dataclass
class RecordingSqs(aws.Sqs):
    """The SQS seam: records sends; forwards to moto unless `offline`; `fail` makes sends raise."""

    client: Any = None
    offline: bool = False
    fail: bool = False
    sent: list[dict[str, str]] = field(default_factory=list)

    def send_fifo(self, queue_url: str, body: str, group_id: str, dedup_id: str) -> str:
        """Record the message, then send it (or fail like an unreachable queue)."""
        if self.fail:
            from botocore.exceptions import EndpointConnectionError

            raise EndpointConnectionError(endpoint_url=queue_url)
        self.sent.append({"body": body, "group_id": group_id, "dedup_id": dedup_id})
        if self.offline:
            return f"offline-{len(self.sent)}"
        return super().send_fifo(queue_url, body, group_id, dedup_id)


@dataclass
class AppEnv:
    """A wired local deployment: handles on every stand-in and seam."""

    moto_url: str
    github: GitHubStandIn
    queue_url: str
    dlq_url: str
    codebuild: RecordingCodeBuild
    sqs: RecordingSqs

    def boto(self, service: str) -> Any:
        """Return a plain boto3 client on the moto server (for assertions)."""
        return aws.session().client(service)

    def receive(self, max_messages: int = 10) -> list[dict[str, Any]]:
        """Receive (and delete) every message currently on the sync queue."""
        sqs = self.boto("sqs")
        found: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=max_messages,
                                        AttributeNames=["All"]).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            found.extend(batch)

    def build_job(self, index: int = -1) -> Any:
        """Return the BuildJob (GHCR2ECR_JOB) of one StartBuild call."""
        from chalicelib.build.job import BuildJob

        return BuildJob.from_json(self.codebuild.variables(index)["GHCR2ECR_JOB"][1])

    def token_parameters(self) -> list[str]:
        """Return the names of token parameters currently in SSM."""
        pages = self.boto("ssm").get_paginator("describe_parameters").paginate()
        return [p["Name"] for page in pages for p in page["Parameters"] if p["Name"].startswith(TOKEN_PREFIX)]


class JsonLogs:
    """The App's JSON log lines, captured with the formatter production uses."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def text(self) -> str:
        """Return everything logged so far."""
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Return the log lines, parsed."""
        return [json.loads(line) for line in self.text().splitlines() if line.strip()]

    def find(self, message: str) -> list[dict[str, Any]]:
        """Return the lines with this message."""
        return [line for line in self.lines() if line.get("message") == message]


@pytest.fixture
def json_logs() -> Iterator[JsonLogs]:
    """Capture the powertools logger's JSON lines (its own handler writes to the real stdout)."""
    capture = JsonLogs()
    handler = logging.StreamHandler(capture.stream)
    handler.setFormatter(logs.logger.registered_formatter)
    logs.logger._logger.addHandler(handler)
    yield capture
    logs.logger._logger.removeHandler(handler)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A moto server on loopback for the whole session."""
    server = MotoServer()
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def app_private_key() -> str:
    """The App's private key (generated once per session: RSA generation is slow)."""
    with GitHubStandIn(app_id=APP_ID) as github:
        return github.private_key_pem


@pytest.fixture
def github(app_private_key: str) -> Iterator[GitHubStandIn]:
    """The GitHub stand-in with the fixture accounts installed (all repositories, default permissions)."""
    with GitHubStandIn(app_id=APP_ID, private_key_pem=app_private_key) as standin:
        for installation_id, (login, account_id, target_type) in INSTALLATIONS.items():
            standin.add_installation(installation_id, login, account_id, target_type=target_type)
        yield standin


def clear_caches() -> None:
    """Forget settings, seams and the App client so the next use reads the current environment."""
    from chalicelib.github import client as github_client

    settings.cache_clear()
    github_client.reset()
    aws.reset()


@pytest.fixture
def app_env(moto_url: str, github: GitHubStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppEnv]:
    """A deployment on moto + the GitHub stand-in, with recording CodeBuild and SQS seams."""
    reset(moto_url)
    for name, value in aws_variables(moto_url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    session = aws.session()
    ssm, sqs = session.client("ssm"), session.client("sqs")
    ssm.put_parameter(Name=KEY_PARAMETER, Value=github.private_key_pem, Type="SecureString")
    ssm.put_parameter(Name=SECRET_PARAMETER, Value=WEBHOOK_SECRET, Type="SecureString")
    dlq_url = sqs.create_queue(QueueName="ghcr2ecr-test-sync-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName=QUEUE_NAME, Attributes={
        "FifoQueue": "true", "VisibilityTimeout": "360",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
    })["QueueUrl"]
    session.client("codebuild").create_project(
        name=PROJECT, source={"type": "S3", "location": "ghcr2ecr-test-bundles/bundle.zip",
                              "buildspec": "buildspec/buildspec.yml"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0",
                     "computeType": "BUILD_GENERAL1_SMALL"},
        serviceRole=f"arn:aws:iam::{ACCOUNT_ID}:role/ghcr2ecr-test-copy",
    )
    env = {
        "GITHUB_APP_ID": str(APP_ID), "GITHUB_API_URL": github.url, "SYNC_QUEUE_URL": queue_url,
        "SYNC_QUEUE_NAME": QUEUE_NAME, "CODEBUILD_PROJECT": PROJECT,
        "ALLOWED_ACCOUNTS": "octo-org,1002,jane-dev", "GITHUB_PRIVATE_KEY_PARAMETER": KEY_PARAMETER,
        "GITHUB_WEBHOOK_SECRET_PARAMETER": SECRET_PARAMETER, "TOKEN_PARAMETER_PREFIX": TOKEN_PREFIX,
        "GHCR_PULL_SECRET_PREFIX": "ghcr2ecr/ghcr-pull/", "ECR_REPOSITORY_PREFIX": "ghcr", "GHCR_REGISTRY": "ghcr.io",
        "POWERTOOLS_SERVICE_NAME": "ghcr2ecr",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ECR_REGISTRY", raising=False)
    clear_caches()
    codebuild, recording_sqs = RecordingCodeBuild(session.client("codebuild")), RecordingSqs(sqs)
    aws.use(aws.CodeBuild, codebuild)
    aws.use(aws.Sqs, recording_sqs)
    yield AppEnv(moto_url, github, queue_url, dlq_url, codebuild, recording_sqs)
    clear_caches()


@pytest.fixture(scope="session")
def chalice_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project dir whose `test` stage adds no environment: tests set it themselves (see app_env)."""
    root = tmp_path_factory.mktemp("chalice-project")
    (root / ".chalice").mkdir()
    (root / ".chalice" / "config.json").write_text(json.dumps(
        {"version": "2.0", "app_name": "ghcr2ecr", "stages": {"test": {}}}
    ))
    return root


@pytest.fixture
def client(app_env: AppEnv, chalice_project: Path) -> Iterator[Any]:
    """A `chalice.test.Client` on app.py, wired to app_env."""
    from chalice.test import Client

    import app

    with Client(app.app, stage_name="test", project_dir=str(chalice_project)) as test_client:
        yield test_client


def post(client: Any, delivery: Delivery, headers: dict[str, str] | None = None) -> Any:
    """POST a delivery to the webhook route, signed unless `headers` are given."""
    return client.http.post("/github/webhook", headers=headers or delivery.headers(), body=delivery.body)


def dispatch_queued(client: Any, env: AppEnv) -> list[Any]:
    """Receive every queued message and run the dispatch handler on each; return the handler results."""
    results = []
    for message in env.receive():
        event = client.events.generate_sqs_event([message["Body"]], queue_name=QUEUE_NAME)
        results.append(client.lambda_.invoke("dispatch", event).payload)
    return results


def build_state_event(client: Any, variables: list[dict[str, str]], status: str = "SUCCEEDED",
                      build_id: str = f"arn:aws:codebuild:us-east-1:{ACCOUNT_ID}:build/{PROJECT}:0b1c",
                      started: datetime | None = None) -> dict[str, Any]:
    """Return an EventBridge "CodeBuild Build State Change" event as AWS documents it (started: now)."""
    detail = build_state_detail(PROJECT, build_id, status, variables, started)
    return client.events.generate_cw_event("aws.codebuild", "CodeBuild Build State Change", detail,
                                           [build_id], region="us-east-1")

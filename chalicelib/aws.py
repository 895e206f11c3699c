"""One small seam per AWS service, each around a boto3 client built lazily, once per container.

Endpoints follow boto3's standard `AWS_ENDPOINT_URL` (a local moto server in tests and the demo).
Tests swap a seam with `use(CodeBuild, recording_instance)`; `reset()` forgets every built seam.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

_T = TypeVar("_T")
_seams: dict[type, Any] = {}
_lock = threading.Lock()
_session: Any = None


def session() -> Any:
    """Return this process's boto3 session (one, so service models are loaded once; endpoint and
    region are still read from the environment for each client)."""
    global _session
    if _session is None:
        import boto3

        _session = boto3.session.Session()
    return _session


def _client(service: str) -> Any:
    """Build a boto3 client with short timeouts and bounded retries (standard mode, 3 attempts)."""
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 3})
    return session().client(service, config=config)


def error_code(exc: BaseException) -> str:
    """Return the AWS error code of a botocore ClientError, or '' for anything else."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def idempotency_mismatch(exc: BaseException) -> bool:
    """Tell whether StartBuild refused a repeated idempotency token sent with other parameters."""
    # CodeBuild documents "a parameter mismatch error" without naming its code: accept the usual AWS code, and
    # an InvalidInputException that says so. Anything else raises, and SQS redelivers after the 5-minute window.
    code = error_code(exc)
    if "IdempotentParameterMismatch" in code:
        return True
    response = getattr(exc, "response", None)
    message = str(response.get("Error", {}).get("Message", "")) if isinstance(response, dict) else ""
    return code == "InvalidInputException" and "idempoten" in message.lower()


def answered(exc: BaseException) -> bool:
    """Tell whether AWS answered the call (a ClientError), or the request never left (no connection made).

    Anything else (a read timeout, a connection dropped mid-call) leaves open whether the call took effect.
    """
    from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

    return isinstance(exc, (ClientError, EndpointConnectionError, ConnectTimeoutError))


def _found(not_found: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """Return the answer of a boto3 call (a dict), or None when AWS answers with the error code `not_found`."""
    try:
        return call()
    except Exception as exc:
        if error_code(exc) == not_found:
            return None
        raise


class Ssm:
    """SSM Parameter Store: cached SecureString reads (powertools Parameters), writes and deletes."""

    def __init__(self, client: Any = None) -> None:
        self.client = client or _client("ssm")
        self._provider: Any = None

    def get_secret(self, name: str, max_age: int = 300) -> str:
        """Read a SecureString, decrypted, cached for `max_age` seconds per container."""
        if self._provider is None:
            from aws_lambda_powertools.utilities.parameters import SSMProvider

            self._provider = SSMProvider(boto3_client=self.client)
        return str(self._provider.get(name, max_age=max_age, decrypt=True))

    def read_secret(self, name: str) -> str | None:
        """Read a SecureString now (decrypted, uncached); None when it does not exist."""
        answer = _found("ParameterNotFound", lambda: self.client.get_parameter(Name=name, WithDecryption=True))
        return None if answer is None else str(answer["Parameter"]["Value"])

    def read_text(self, name: str) -> str | None:
        """Read a String parameter now (uncached); None when it does not exist."""
        answer = _found("ParameterNotFound", lambda: self.client.get_parameter(Name=name))
        return None if answer is None else str(answer["Parameter"]["Value"])

    def put_text(self, name: str, value: str, description: str) -> None:
        """Write (or overwrite) a String parameter (not a secret: no KMS)."""
        self.client.put_parameter(Name=name, Value=value, Type="String", Overwrite=True, Description=description)

    def parameters_under(self, path: str) -> list[tuple[str, datetime]]:
        """Return (name, last modified) of every parameter under `path`, recursively; values are not decrypted."""
        pages = self.client.get_paginator("get_parameters_by_path").paginate(
            Path=path, Recursive=True, WithDecryption=False)
        return [(str(p["Name"]), p["LastModifiedDate"]) for page in pages for p in page.get("Parameters", [])]

    def put_secret(self, name: str, value: str, description: str) -> None:
        """Write (or overwrite) a SecureString parameter."""
        self.client.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True,
                                  Description=description)

    def delete(self, name: str) -> bool:
        """Delete a parameter; False when it was already gone."""
        return _found("ParameterNotFound", lambda: self.client.delete_parameter(Name=name)) is not None


class Sqs:
    """The FIFO sync queue."""

    def __init__(self, client: Any = None) -> None:
        self.client = client or _client("sqs")

    def send_fifo(self, queue_url: str, body: str, group_id: str, dedup_id: str) -> str:
        """Send one message; return its id."""
        answer = self.client.send_message(QueueUrl=queue_url, MessageBody=body, MessageGroupId=group_id,
                                          MessageDeduplicationId=dedup_id)
        return str(answer["MessageId"])


@dataclass(frozen=True)
class StartedBuild:
    """StartBuild's answer: the build, when it started, and whether it had already finished."""

    # A StartBuild repeated with the same idempotency token and parameters within 5 minutes returns the earlier
    # build (FACTS.md §7); with other parameters CodeBuild documents a mismatch error (idempotency_mismatch).

    id: str
    complete: bool = False
    started: datetime | None = None

    def began_before(self, when: datetime) -> bool:
        """Tell whether this build started before `when` (so it is not the one this call started)."""
        return self.complete or (self.started is not None and self.started < when)


class CodeBuild:
    """The copy project."""

    def __init__(self, client: Any = None) -> None:
        self.client = client or _client("codebuild")

    def start_build(self, project: str, variables: list[dict[str, str]], idempotency_token: str) -> StartedBuild:
        """Start a build with environment variable overrides (or get back the one this token started)."""
        answer = self.client.start_build(projectName=project, environmentVariablesOverride=variables,
                                         idempotencyToken=idempotency_token)
        build = answer["build"]
        started = build.get("startTime")  # botocore gives a timezone-aware datetime
        return StartedBuild(str(build["id"]), bool(build.get("buildComplete")),
                            started if isinstance(started, datetime) else None)


class SecretsManager:
    """Operator-provided fallback read credentials."""

    def __init__(self, client: Any = None) -> None:
        self.client = client or _client("secretsmanager")

    def exists(self, name: str) -> bool:
        """Tell whether a secret exists (DescribeSecret: metadata only, the value is never read here)."""
        return _found("ResourceNotFoundException", lambda: self.client.describe_secret(SecretId=name)) is not None


class Ecr:
    """The destination registry's API: which repositories this deployment made, and what each records."""

    def __init__(self, client: Any = None) -> None:
        self.client = client or _client("ecr")

    def repositories_under(self, prefix: str, limit: int = 100_000) -> list[tuple[str, str]]:
        """Return (name, ARN) of every repository named `<prefix>/...` (DescribeRepositories pages of 1,000)."""
        found: list[tuple[str, str]] = []
        pages = self.client.get_paginator("describe_repositories").paginate(PaginationConfig={"PageSize": 1000})
        for page in pages:
            for repo in page.get("repositories", []):
                if str(repo["repositoryName"]).startswith(prefix.rstrip("/") + "/"):
                    found.append((str(repo["repositoryName"]), str(repo["repositoryArn"])))
            if len(found) >= limit:
                break
        return found[:limit]

    def tags(self, arn: str) -> dict[str, str]:
        """Return a repository's tags (ListTagsForResource)."""
        answer = self.client.list_tags_for_resource(resourceArn=arn)
        return {str(t["Key"]): str(t["Value"]) for t in answer.get("tags", [])}


def ecr() -> Ecr:
    """Return this container's ECR seam."""
    return _get(Ecr)
class S3:
    """Build reports and the markers that make on_build_state's effects happen at most once."""

    def __init__(self, client: Any = None) -> None:
        self.client = client or _client("s3")

    def put(self, bucket: str, key: str, body: bytes, if_absent: bool = False) -> bool:
        """Write an object; with `if_absent`, only if none exists (S3 conditional write): False when one did."""
        extra = {"IfNoneMatch": "*"} if if_absent else {}
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", **extra)
        except Exception as exc:
            # 412 PreconditionFailed: the key exists; 409 ConditionalRequestConflict: a concurrent write won.
            if if_absent and error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
                return False
            raise
        return True

    def delete(self, bucket: str, key: str) -> None:
        """Delete an object (absent is fine: S3 answers 204 either way)."""
        self.client.delete_object(Bucket=bucket, Key=key)

    def get(self, bucket: str, key: str, limit: int) -> bytes | None:
        """Read at most `limit` bytes of an object (None when absent); a larger object raises ValueError."""
        answer = _found("NoSuchKey", lambda: self.client.get_object(Bucket=bucket, Key=key))
        if answer is None:
            return None
        with answer["Body"] as body:
            data = body.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"s3://{bucket}/{key} is over {limit} bytes")
        return bytes(data)


def _get(seam: type[_T]) -> _T:
    instance = _seams.get(seam)
    if instance is None:
        with _lock:
            instance = _seams.get(seam)
            if instance is None:
                instance = _seams[seam] = seam()
    return instance


def ssm() -> Ssm:
    """Return this container's SSM seam."""
    return _get(Ssm)


def sqs() -> Sqs:
    """Return this container's SQS seam."""
    return _get(Sqs)


def codebuild() -> CodeBuild:
    """Return this container's CodeBuild seam."""
    return _get(CodeBuild)


def secrets_manager() -> SecretsManager:
    """Return this container's Secrets Manager seam."""
    return _get(SecretsManager)


def s3() -> S3:
    """Return this container's S3 seam."""
    return _get(S3)


def use(seam: type[_T], instance: _T) -> None:
    """Replace a seam (tests: a recording CodeBuild)."""
    _seams[seam] = instance


def reset() -> None:
    """Forget every seam; the next use builds fresh clients from the current environment."""
    _seams.clear()

"""A local CodeBuild: a buildspec's build phase run as CodeBuild runs it, with its variables resolved."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUILDSPEC = ROOT / "buildspec" / "buildspec.yml"
COMMAND_TIMEOUT = 600.0


@dataclass(frozen=True)
class PhaseResult:
    """How a build phase ended: the first failing command and its status, a failing `finally` command, output."""

    status: int
    failed: str | None
    finally_failed: str | None
    output: str


def load_buildspec(path: Path = BUILDSPEC) -> dict[str, Any]:
    """Read a buildspec (version 0.2)."""
    return yaml.safe_load(path.read_text())


def resolve_variables(variables: Sequence[Mapping[str, str]], ssm: Any, secrets: Any) -> dict[str, str]:
    """Resolve StartBuild overrides: PARAMETER_STORE and SECRETS_MANAGER values are names, read at build start."""
    resolved = {}
    for variable in variables:
        kind, value = variable["type"], variable["value"]
        if kind == "PARAMETER_STORE":
            value = ssm.get_parameter(Name=value, WithDecryption=True)["Parameter"]["Value"]
        elif kind == "SECRETS_MANAGER":
            value = secrets.get_secret_value(SecretId=value)["SecretString"]
        resolved[variable["name"]] = value
    return resolved


def run_build_phase(spec: Mapping[str, Any], env: Mapping[str, str], *, cwd: Path = ROOT, shell: str = "bash",
                    capture: bool = False) -> PhaseResult:
    """Run `phases.build`: commands in order until one fails, then every `finally` command.

    CodeBuild's default shell is `sh` (dash on the Ubuntu images); the demo uses bash: both must work.
    """
    phase = spec["phases"]["build"]
    status, failed, finally_failed, output = 0, None, None, ""
    for is_finally, commands in ((False, phase["commands"]), (True, phase.get("finally", []))):
        for command in commands:
            done = subprocess.run([shell, "-c", command], env=dict(env), cwd=cwd, capture_output=capture,
                                  text=True, timeout=COMMAND_TIMEOUT)
            output += (done.stdout or "") + (done.stderr or "")
            if done.returncode and is_finally:
                finally_failed = finally_failed or command.splitlines()[0]
            elif done.returncode:
                status, failed = done.returncode, command.splitlines()[0]
                break
    return PhaseResult(status, failed, finally_failed, output)


@dataclass
class RecordingCodeBuild:
    """The App's CodeBuild seam over moto, keeping StartBuild's arguments (moto ignores the overrides).

    `fail_next` raises those AWS error codes (or (code, message) pairs) first; `earlier` answers a repeated
    idempotency token with its earlier build (moto ignores the token too). `builds` holds each started build's id
    and start time.
    """

    client: Any = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[str | tuple[str, str]] = field(default_factory=list)
    earlier: dict[str, Any] = field(default_factory=dict)
    builds: list[dict[str, Any]] = field(default_factory=list)  # id, project, variables, started
    # CodeBuild's idempotency, which moto lacks: a repeated token with the same variables gets the earlier build,
    # with other variables a mismatch error (FACTS.md §7). `lose_answers`: start that many builds, then time out.
    idempotent: bool = False
    lose_answers: int = 0
    _by_token: dict[str, tuple[list[dict[str, str]], Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from chalicelib import aws

        self._seam = aws.CodeBuild(self.client)

    def start_build(self, project: str, variables: list[dict[str, str]], idempotency_token: str) -> Any:
        """Record the call, then start the build in moto (or raise the next queued error code)."""
        if self.fail_next:
            from botocore.exceptions import ClientError

            failure = self.fail_next.pop(0)
            code, message = failure if isinstance(failure, tuple) else (failure, f"injected {failure}")
            raise ClientError({"Error": {"Code": code, "Message": message}}, "StartBuild")
        self.calls.append({"project": project, "variables": variables, "idempotency_token": idempotency_token})
        if self.idempotent and idempotency_token in self._by_token:
            return self._repeated(idempotency_token, variables)
        started = datetime.now(timezone.utc)
        build = self.earlier.get(idempotency_token) or self._seam.start_build(project, variables, idempotency_token)
        self.builds.append({"id": build.id, "project": project, "variables": variables, "started": started})
        self._by_token[idempotency_token] = (variables, build)
        if self.lose_answers > 0:
            from botocore.exceptions import ReadTimeoutError

            self.lose_answers -= 1
            raise ReadTimeoutError(endpoint_url="https://codebuild.us-east-1.amazonaws.com/")
        return build

    def _repeated(self, token: str, variables: list[dict[str, str]]) -> Any:
        """Answer a repeated idempotency token as CodeBuild does: the earlier build, or a mismatch error."""
        from botocore.exceptions import ClientError

        earlier_variables, build = self._by_token[token]
        if earlier_variables == variables:
            return build
        raise ClientError({"Error": {"Code": "InvalidInputException", "Message": "Idempotency token was already "
                                     "used with different parameters"}}, "StartBuild")

    def variables(self, index: int = -1) -> dict[str, tuple[str, str]]:
        """Return one call's overrides as {name: (type, value)}."""
        return {v["name"]: (v["type"], v["value"]) for v in self.calls[index]["variables"]}


def build_state_detail(project: str, build_id: str, status: str, variables: list[dict[str, str]],
                       started: datetime | None = None) -> dict[str, Any]:
    """Return the `detail` of an EventBridge "CodeBuild Build State Change" event, as AWS documents it."""
    from chalicelib.outcome.build_state import start_time_text

    return {
        "build-status": status, "project-name": project, "build-id": build_id, "current-phase": "COMPLETED",
        "current-phase-context": "[: ]", "version": "1",
        "additional-information": {
            "build-complete": status != "IN_PROGRESS", "initiator": "ghcr2ecr-dispatch",
            "build-start-time": start_time_text(started or datetime.now(timezone.utc)), "timeout-in-minutes": 15,
            "environment": {"image": "aws/codebuild/amazonlinux-x86_64-lambda-standard:python3.12",
                            "privileged-mode": False, "compute-type": "BUILD_LAMBDA_1GB",
                            "type": "LINUX_LAMBDA_CONTAINER", "environment-variables": variables},
            "phases": [{"phase-type": "SUBMITTED", "duration-in-seconds": 0},
                       {"phase-type": "BUILD", "duration-in-seconds": 7},
                       {"phase-type": "COMPLETED"}],
        },
    }

"""CodeBuild "Build State Change" events → revoke the build's token, delete its parameter, log one outcome line.

Event shape (docs.aws.amazon.com/codebuild/latest/userguide/sample-build-notifications.html):
`detail.build-status`, `detail.build-id`, `detail.project-name`,
`detail.additional-information.environment.environment-variables` = [{name, value, type}], where a
PARAMETER_STORE variable's value is the parameter *name*; `phases[].duration-in-seconds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from chalicelib import logs, token_cleanup
from chalicelib.build_job import BuildJob
from chalicelib.dispatch import SOURCE_TOKEN

FINAL_STATES = ("SUCCEEDED", "FAILED", "FAULT", "STOPPED", "TIMED_OUT")
START_TIME_FORMAT = "%b %d, %Y %I:%M:%S %p"


@dataclass(frozen=True)
class BuildOutcome:
    """One finished build, as logged."""

    build_id: str
    status: str
    source: str
    digest: str
    tag: str
    installation_id: str
    delivery_id: str
    duration_seconds: float | None
    token_parameter: str | None
    parameter_deleted: bool
    token_revoked: str | None = None  # token_cleanup.Cleanup.revoked; None without a token parameter


def event_pattern(project: str) -> dict[str, Any]:
    """Return the EventBridge pattern: final states of the copy project's builds."""
    return {
        "source": ["aws.codebuild"],
        "detail-type": ["CodeBuild Build State Change"],
        "detail": {"project-name": [project], "build-status": list(FINAL_STATES)},
    }


def handle_event(event: dict[str, Any]) -> BuildOutcome | None:
    """Revoke and delete the token of a finished build and log its outcome; None for non-final states."""
    logs.unbind_all()
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    status = str(detail.get("build-status", ""))
    if status not in FINAL_STATES:
        return None
    info = detail.get("additional-information") if isinstance(detail.get("additional-information"), dict) else {}
    env = info.get("environment", {}) if isinstance(info.get("environment"), dict) else {}
    variables = {v.get("name"): v for v in env.get("environment-variables", []) if isinstance(v, dict)}

    job = BuildJob.from_variables(variables)
    summary = job.summary if job else {}

    def plain(name: str) -> str:
        return str(summary.get(name) or "")

    parameter = _token_parameter(variables.get(SOURCE_TOKEN))
    # The build revoked it in `finally` unless it failed before (then 401 here is fine); see token_cleanup.
    cleanup = token_cleanup.revoke_and_delete(parameter) if parameter else None
    deleted = cleanup.deleted if cleanup else False
    outcome = BuildOutcome(
        build_id=str(detail.get("build-id", "")), status=status, source=plain("package"), digest=plain("digest"),
        tag=plain("tag"), installation_id=plain("installation"), delivery_id=plain("correlation_id"),
        duration_seconds=_duration(info, event.get("time")), token_parameter=parameter, parameter_deleted=deleted,
        token_revoked=cleanup.revoked if cleanup else None,
    )
    logs.bind(delivery=outcome.delivery_id, installation=outcome.installation_id, package=outcome.source,
              digest=outcome.digest, tag=outcome.tag)
    fields = {"build_id": outcome.build_id, "status": status, "duration_seconds": outcome.duration_seconds,
              "token_parameter_deleted": deleted, "token_revoked": outcome.token_revoked}
    if status == "SUCCEEDED":
        logs.logger.info("build finished", extra=fields)
        logs.count("BuildsSucceeded")
    else:
        logs.logger.error("build finished", extra=fields)
        logs.count("BuildsFailed", status=status)
    return outcome


def _token_parameter(entry: dict[str, Any] | None) -> str | None:
    """Return the build's token parameter name, only if it is ours (never delete outside the prefix)."""
    if not entry or entry.get("type") != "PARAMETER_STORE":
        return None
    name = str(entry.get("value", ""))
    return name if token_cleanup.is_token_parameter(name) else None


def start_time_text(when: datetime) -> str:
    """Write a time as the event's `build-start-time` does (tests, demo)."""
    return when.astimezone(timezone.utc).strftime(START_TIME_FORMAT)


def _start_time(info: dict[str, Any]) -> datetime | None:
    """Return `build-start-time` ("Sep 1, 2017 4:12:29 PM", UTC like the event's `time`), or None."""
    try:
        start = datetime.strptime(str(info["build-start-time"]), START_TIME_FORMAT)
    except (KeyError, ValueError):
        return None
    return start.replace(tzinfo=timezone.utc)


def _duration(info: dict[str, Any], end_time: Any) -> float | None:
    """Sum the phases' durations; else from `build-start-time` to the event time."""
    phases = info.get("phases")
    if isinstance(phases, list):
        seconds = [p.get("duration-in-seconds") for p in phases if isinstance(p, dict)]
        numbers = [s for s in seconds if isinstance(s, (int, float))]
        if numbers:
            return float(sum(numbers))
    start = _start_time(info)
    try:
        end = datetime.strptime(str(end_time), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return max((end - start).total_seconds(), 0.0) if start else None

"""CodeBuild "Build State Change" events → a pure parse, then a list of idempotent effects.

Event shape (docs.aws.amazon.com/codebuild/latest/userguide/sample-build-notifications.html):
`detail.build-status`, `detail.build-id`, `detail.project-name`,
`detail.additional-information.environment.environment-variables` = [{name, value, type}], where a
PARAMETER_STORE variable's value is the parameter *name*; `phases[].duration-in-seconds`.

EventBridge may deliver an event more than once, and Lambda retries a failed asynchronous invocation, so
the handler reruns everything. Each effect happens at most once: revoking and deleting the token are
idempotent by nature (the parameter is gone the second time); the check run is completed only while GitHub
says it is not (its `status`, and its `external_id` names this build); storage records and the outcome log
line first claim a marker under the build id in the report bucket (chalicelib/build/report_store.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from chalicelib import logs
from chalicelib.build import contract, report_store, token_cleanup
from chalicelib.build.contract import FINAL_STATES
from chalicelib.config import settings
from chalicelib.github.client import github_app
from chalicelib.handoff import record
from chalicelib.outcome import check_output, reporting
from chalicelib.outcome.storage_records import records_for
from chalicelib.sync.signatures import COSIGN_TAG
from chalicelib.values import mapping

START_TIME_FORMAT = "%b %d, %Y %I:%M:%S %p"


@dataclass(frozen=True)
class BuildOutcome:
    """One finished build, parsed from its event (ids and names only), and what the effects did."""

    build_id: str
    status: str
    source: str
    digest: str
    tag: str
    installation_id: str
    delivery_id: str
    duration_seconds: float | None
    token_parameter: str | None
    destination: str = ""
    owner_id: str = ""
    repository: str = ""  # the linked repository, "Owner/name"; "" when none
    check_run_id: int | None = None
    check_run_external_id: str = ""
    storage_records: bool = False
    report_bucket: str = ""
    handoff_id: str = ""  # a hand-off build: its record is completed; its source token is the tenant job's
    installation_token_parameter: str | None = None  # a hand-off build's own installation token
    done: dict[str, Any] = field(default_factory=dict, compare=False)  # effect -> result (logged)
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # the report, read once

    @property
    def parameter_deleted(self) -> bool:
        """Tell whether this event deleted the token parameter."""
        return bool(self.done.get("token_parameter_deleted"))

    @property
    def token_revoked(self) -> str | None:
        """Return token_cleanup.Cleanup.revoked; None without a token parameter."""
        return self.done.get("token_revoked")


Effect = tuple[str, Callable[[BuildOutcome], None]]


def handle_event(event: dict[str, Any]) -> BuildOutcome | None:
    """Parse the event, then run each effect in order; None for non-final states."""
    logs.unbind_all()
    outcome = parse(event)
    if outcome is None:
        return None
    logs.bind(delivery=outcome.delivery_id, installation=outcome.installation_id, package=outcome.source,
              digest=outcome.digest, tag=outcome.tag)
    for _name, effect in effects(outcome):
        effect(outcome)
    return outcome


def parse(event: dict[str, Any]) -> BuildOutcome | None:
    """Read a final build's ids, names and reporting targets from the event (no I/O)."""
    detail = mapping(event.get("detail"))
    status = str(detail.get("build-status", ""))
    if status not in FINAL_STATES:
        return None
    info = mapping(detail.get("additional-information"))
    env = mapping(info.get("environment"))
    entries = env.get("environment-variables", [])
    build = contract.finished_build(str(detail.get("build-id", "")), status,
                                    entries if isinstance(entries, list) else [])
    job = build.job  # GHCR2ECR_JOB: names and ids of the build's packages
    single = job.targets[0] if job and len(job.targets) == 1 else None
    check_run = build.plain(contract.CHECK_RUN_ID)
    return BuildOutcome(
        build_id=build.build_id, status=status, source=build.package, digest=build.digest, tag=build.tag,
        installation_id=build.plain(contract.INSTALLATION_ID), delivery_id=job.correlation_id if job else "",
        duration_seconds=_duration(info, event.get("time")),
        token_parameter=_token_parameter(build.variables.get(contract.SOURCE_TOKEN)),
        destination=single.dest if single else "", owner_id=str(single.owner_id) if single else "",
        repository=build.plain(contract.GITHUB_REPOSITORY),
        check_run_id=int(check_run) if check_run.isdigit() and len(check_run) < 20 else None,
        check_run_external_id=build.plain(contract.CHECK_RUN_EXTERNAL_ID),
        storage_records=build.plain(contract.STORAGE_RECORDS) == "true",
        report_bucket=build.plain(contract.REPORT_BUCKET),
        handoff_id=job.correlation_id if build.handoff and job else "",
        installation_token_parameter=_token_parameter(build.variables.get(contract.INSTALLATION_TOKEN)),
    )


def effects(outcome: BuildOutcome) -> list[Effect]:
    """Return what a final event does, in order: clean up the credential first, tell the tenant, log."""
    planned: list[Effect] = []
    if outcome.handoff_id:
        # Never revoke the tenant job's token (its later steps still need it): only delete its parameter.
        planned.append(("revoke_and_delete", _handoff_tokens))
    elif outcome.token_parameter:
        planned.append(("revoke_and_delete", _revoke_and_delete))
    reporting_target = outcome.repository and outcome.installation_id.isdigit()
    if reporting_target and outcome.check_run_id is not None:
        planned.append(("complete_check_run", _complete_check_run))
    if reporting_target and outcome.storage_records and outcome.status == "SUCCEEDED":
        planned.append(("storage_records", _storage_records))
    if outcome.handoff_id:
        planned.append(("handoff_record", _handoff_record))
    planned.append(("log", _log))
    return planned


def _revoke_and_delete(outcome: BuildOutcome) -> None:
    # The build revoked it in `finally` unless it failed before (then 401 here is fine); see token_cleanup.
    cleanup = token_cleanup.revoke_and_delete(outcome.token_parameter or "")
    outcome.done.update(token_parameter_deleted=cleanup.deleted, token_revoked=cleanup.revoked)


def _handoff_tokens(outcome: BuildOutcome) -> None:
    """A hand-off build: revoke and delete its installation token; delete the job token's parameter unrevoked."""
    cleanup = token_cleanup.revoke_and_delete(outcome.installation_token_parameter or "")
    job_token = token_cleanup.delete_only(outcome.token_parameter or "")
    outcome.done.update(token_parameter_deleted=cleanup.deleted and job_token, token_revoked=cleanup.revoked,
                        job_token_deleted=job_token)


def _handoff_record(outcome: BuildOutcome) -> None:
    """Complete the hand-off's record: what the action's status poll answers."""
    state = final_state(outcome)
    build = contract.finished_build(outcome.build_id, outcome.status, [], outcome.cache.get("report"))
    succeeded = outcome.status == "SUCCEEDED" and state.report is not None and state.report.get("ok") is True
    reason = "" if succeeded else (build.cause or state.cause or f"the copy build ended {outcome.status}")
    updated = record.update(outcome.report_bucket, outcome.handoff_id, status="succeeded" if succeeded else "failed",
                            tags=[t for t in build.tags if not COSIGN_TAG.fullmatch(t)] if succeeded else [],
                            reason=" ".join(reason.split())[:500],
                            build_id=outcome.build_id, **build.moved())
    outcome.done["handoff"] = updated.status if updated else "unknown"


def _complete_check_run(outcome: BuildOutcome) -> None:

    state = final_state(outcome)
    outcome.done["check_run"] = reporting.complete_check_run(
        _app(), _target(outcome), outcome.check_run_id or 0, outcome.check_run_external_id,
        check_output.conclusion(state), check_output.outcome_output(state))


def _storage_records(outcome: BuildOutcome) -> None:

    state = final_state(outcome)
    if state.report is None or state.report.get("ok") is not True:
        outcome.done["storage_records"] = 0
        return
    if not _claim(outcome, "storage-records"):
        outcome.done["storage_records"] = "already written"
        return
    target = _target(outcome)
    outcome.done["storage_records"] = reporting.write_storage_records(
        _app(), target, records_for(state, target.name))


def _log(outcome: BuildOutcome) -> None:
    fields = {"build_id": outcome.build_id, "status": outcome.status, "duration_seconds": outcome.duration_seconds,
              "token_parameter_deleted": outcome.parameter_deleted, "token_revoked": outcome.token_revoked,
              **{k: v for k, v in outcome.done.items() if k not in ("token_parameter_deleted", "token_revoked")}}
    if not _claim(outcome, "log"):
        logs.logger.info("build event repeated; its effects were done once", extra=fields)
        return
    if outcome.status == "SUCCEEDED":
        logs.logger.info("build finished", extra=fields)
        logs.count("BuildsSucceeded")
    else:
        logs.logger.error("build finished", extra=fields)
        logs.count("BuildsFailed", status=outcome.status)


def final_state(outcome: BuildOutcome) -> check_output.FinalState:
    """Return what the check run describes: the event's state and the build's stored report (read once)."""
    if "report" not in outcome.cache:
        try:
            outcome.cache["report"] = report_store.load(outcome.report_bucket, outcome.build_id)
        except Exception as exc:  # S3 unavailable or refused: report from the build's state alone
            logs.logger.warning("build report unreadable", extra={"error": type(exc).__name__})
            outcome.cache["report"] = None
        outcome.done["report_found"] = outcome.cache["report"] is not None
    secret = settings().ghcr_pull_secret_prefix + outcome.owner_id if outcome.owner_id else ""
    report, package_status, reason = check_output.unwrap(outcome.cache["report"])
    return check_output.FinalState(
        status=outcome.status, source=outcome.source, destination=outcome.destination, digest=outcome.digest,
        tag=outcome.tag, build_id=outcome.build_id, duration_seconds=outcome.duration_seconds,
        report=report, fallback_secret=secret, skipped=reason if package_status == "skipped" else "",
        cause=reason if package_status == "failed" else "")


def _claim(outcome: BuildOutcome, effect: str) -> bool:
    """Claim an effect's marker; an unwritable ledger counts as claimed elsewhere only for storage records."""
    try:
        return report_store.claim(outcome.report_bucket, outcome.build_id, effect)
    except Exception as exc:  # S3 unavailable or refused: never write twice, always log once
        logs.logger.warning("effect marker unwritable", extra={"effect": effect, "error": type(exc).__name__})
        return effect == "log"


def _app() -> Any:

    return github_app()


def _target(outcome: BuildOutcome) -> Any:
    """Return where this build's reports go."""
    return reporting.Target(int(outcome.installation_id), outcome.repository)


def _token_parameter(entry: Mapping[str, Any] | None) -> str | None:
    """Return the build's token parameter name, only if it is ours (never delete outside the prefix)."""
    if not entry or entry.get("type") != "PARAMETER_STORE":
        return None
    name = str(entry.get("value", ""))
    return name if token_cleanup.is_token_parameter(name) else None


def start_time_text(when: datetime) -> str:
    """Write a time as the event's `build-start-time` does (tests, demo)."""
    return when.astimezone(timezone.utc).strftime(START_TIME_FORMAT)


def _start_time(info: Mapping[str, Any]) -> datetime | None:
    """Return `build-start-time` ("Sep 1, 2017 4:12:29 PM", UTC like the event's `time`), or None."""
    try:
        start = datetime.strptime(str(info["build-start-time"]), START_TIME_FORMAT)
    except (KeyError, ValueError):
        return None
    return start.replace(tzinfo=timezone.utc)


def _duration(info: Mapping[str, Any], end_time: Any) -> float | None:
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

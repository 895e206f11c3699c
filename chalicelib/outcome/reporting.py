"""Telling the tenant on GitHub: each write with its own installation token, and never at the sync's expense.

Each write (start a check run, complete it, write storage records) mints a token for the one linked
repository with only the permission it needs plus `metadata: read`, outside the build, and revokes it after.
An installation that has not accepted the App's new permissions (`checks`, `artifact_metadata`) gets a 422
from the token endpoint: that report is skipped with one log line and the sync goes on. Nothing here raises:
a failed report never fails, retries or delays a sync (every GitHub call is bounded: chalicelib/github/app.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.outcome import requests as reports
from chalicelib import logs
# the build's PLAINTEXT reporting variables, read back by on_build_state (one contract for all of them)
from chalicelib.build.contract import (CHECK_RUN_EXTERNAL_ID, CHECK_RUN_ID, GITHUB_REPOSITORY, REPORT_BUCKET,
                                       REVISION, STORAGE_RECORDS)
from chalicelib.github.app import check_login, split_repository
from chalicelib.github.errors import GitHubError, GitHubUnavailable, InstallationUnavailable

if TYPE_CHECKING:
    from chalicelib.github.app import GitHubApp, InstallationToken


@dataclass(frozen=True)
class Target:
    """Where reports go: the installation, and the linked repository (`Owner/name`)."""

    installation_id: int
    repository: str

    @property
    def owner(self) -> str:
        """Return the repository's owner login."""
        return self.repository.split("/", 1)[0]

    @property
    def name(self) -> str:
        """Return the repository's name."""
        return self.repository.split("/", 1)[1]


@contextlib.contextmanager
def writer(app: GitHubApp, target: Target, permission: str) -> Iterator[InstallationToken | None]:
    """Yield a fresh token with `permission: write` on the one repository, or None (logged once) when GitHub
    refuses that token; the token is revoked afterwards."""
    try:
        token = app.mint_token(target.installation_id, [target.name], {permission: "write", "metadata": "read"})
    except InstallationUnavailable as exc:
        logs.logger.warning("reporting to GitHub skipped", extra={
            "permission": f"{permission}: write", "code": exc.code, "reason": str(exc)})
        logs.count("ReportsSkipped", reason=exc.code)
        yield None
        return
    except Exception as exc:  # rate limit, GitHub down: the type only
        _failed(permission, type(exc).__name__)
        yield None
        return
    try:
        yield token
    finally:
        try:
            app.revoke(token)
        except Exception as exc:  # it expires within the hour
            logs.logger.warning("could not revoke a reporting token", extra={"error": type(exc).__name__})


def start_check_run(app: GitHubApp, target: Target, head_sha: str, external_id: str, output: reports.Output,
                    conclusion: str | None = None) -> int | None:
    """Create the `ghcr2ecr` check run (queued, or already completed); return its id, or None."""
    try:
        body = reports.check_run(head_sha, external_id, output, conclusion)
        split_repository(target.repository)
    except ValueError as exc:
        logs.logger.info("no check run", extra={"reason": str(exc)})
        return None
    with writer(app, target, "checks") as token:
        if token is None:
            return None
        try:
            return app.create_check_run(token, target.repository, body).id
        except Exception as exc:
            _unwritten(exc, "checks", "check run not created")
            return None


def complete_check_run(app: GitHubApp, target: Target, check_run_id: int, external_id: str, conclusion: str,
                       output: reports.Output) -> str:
    """Complete a check run once: skipped when it is already completed or is not this build's."""
    try:
        body = reports.completion(conclusion, output)
        split_repository(target.repository)
    except ValueError as exc:
        logs.logger.info("no check run", extra={"reason": str(exc)})
        return "skipped"
    with writer(app, target, "checks") as token:
        if token is None:
            return "skipped"
        try:
            current = app.get_check_run(token, target.repository, check_run_id)
        except Exception as exc:
            _unwritten(exc, "checks", "check run not found")
            return "failed"
        if current.external_id != external_id:
            logs.logger.warning("check run not completed: it is not this build's", extra={"check_run": check_run_id})
            return "not ours"
        if current.status == "completed":
            return "already completed"
        try:
            app.update_check_run(token, target.repository, check_run_id, body)
        except Exception as exc:
            _unwritten(exc, "checks", "check run not completed")
            return "failed"
        return "completed"


def write_storage_records(app: GitHubApp, target: Target, records: list[reports.StorageRecord]) -> int:
    """Write one storage record per mirrored digest; return how many GitHub accepted."""
    bodies = []
    for record in records:
        try:
            check_login(target.owner)
            bodies.append(reports.storage_record(record))
        except ValueError as exc:
            logs.logger.info("no storage record", extra={"digest": record.digest, "reason": str(exc)})
    if not bodies:
        return 0
    written = 0
    with writer(app, target, "artifact_metadata") as token:
        for body in bodies:
            if token is None:
                break
            try:
                app.create_storage_record(token, target.owner, body)
            except Exception as exc:
                _unwritten(exc, "artifact_metadata", "storage record not written")
                break  # the same refusal would follow for the others
            written += 1
    return written


def _unwritten(exc: Exception, permission: str, what: str) -> None:
    """Log and count a write GitHub refused or did not answer (its status and message; never a token)."""
    if isinstance(exc, GitHubError) and not isinstance(exc, GitHubUnavailable) and exc.status is not None:
        logs.logger.warning(what, extra={"http_status": exc.status, "reason": exc.reason})
        logs.count("ReportsFailed", reason=f"http_{exc.status}")
        return
    _failed(permission, type(exc).__name__)  # GitHubUnavailable after its bounded retries, or anything unexpected


def _failed(permission: str, error: str) -> None:
    logs.logger.warning("reporting to GitHub failed", extra={"permission": permission, "error": error})
    logs.count("ReportsFailed", reason="unavailable")


@dataclass(frozen=True)
class BuildReporting:
    """What dispatch knows about where a build's outcome should be reported."""

    installation_id: int
    owner: str  # the package owner's login, as GitHub spells it
    repository: str | None  # the linked repository's name; None when the package has none
    organization: bool
    revision: str  # the image's source commit ("" when the image has no revision label)
    checks: bool  # GHCR2ECR_CHECKS

    @property
    def target(self) -> Target | None:
        """Return where reports go, or None without a linked repository."""
        return Target(self.installation_id, f"{self.owner}/{self.repository}") if self.repository else None

    def check_run_skipped(self) -> str | None:
        """Return why no check run is made, or None when one is."""
        if not self.checks:
            return "GHCR2ECR_CHECKS is false"
        if self.repository is None:
            return "the package has no linked repository"
        if not reports.SHA.fullmatch(self.revision):
            return "the image has no org.opencontainers.image.revision label"
        return None


def start_build_reports(app: GitHubApp, where: BuildReporting, output: reports.Output, report_bucket: str,
                        new_id: Callable[[], str]) -> dict[str, str]:
    """Create the check run for a build about to start; return the build's PLAINTEXT reporting variables."""
    variables = {REPORT_BUCKET: report_bucket, REVISION: where.revision}
    target = where.target
    if target is None:
        return variables
    variables[GITHUB_REPOSITORY] = target.repository
    variables[STORAGE_RECORDS] = str(where.organization).lower()  # the endpoint is an organization's
    skipped = where.check_run_skipped()
    if skipped:
        logs.logger.info("no check run", extra={"reason": skipped})
        return variables
    external_id = new_id()
    check_run = start_check_run(app, target, where.revision, external_id, output)
    if check_run is not None:
        variables.update({CHECK_RUN_ID: str(check_run), CHECK_RUN_EXTERNAL_ID: external_id})
    return variables


def report_not_started(app: GitHubApp, where: BuildReporting, output: reports.Output,
                       new_id: Callable[[], str]) -> None:
    """Tell the tenant on the commit that no build started (an invalid variable), when a check run may be made."""
    target = where.target
    if target is not None and where.check_run_skipped() is None:
        start_check_run(app, target, where.revision, new_id(), output, conclusion="failure")


def abandon_check_run(app: GitHubApp, variables: dict[str, str], installation_id: int, reason: str) -> None:
    """Complete the check run of a build that did not start after all (an earlier one will report)."""
    check_run = variables.get(CHECK_RUN_ID, "")
    repository = variables.get(GITHUB_REPOSITORY, "")
    if check_run.isdigit() and repository:
        complete_check_run(app, Target(installation_id, repository), int(check_run),
                           variables.get(CHECK_RUN_EXTERNAL_ID, ""), "skipped", reports.Output("Not started", reason))

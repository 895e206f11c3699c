"""Dispatch's part in telling the tenant: the check run of a build about to start, or of a sync refused.

A check run belongs to one pushed image: a job of one package with a selected digest, its tag not a cosign
signature tag (a signature push reports nothing of its own), the image's revision label a commit sha, a
linked repository, and GHCR2ECR_CHECKS not false. Nothing here fails or delays the sync (chalicelib/reporting).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from chalicelib.build.contract import REPORT_BUCKET, variable
from chalicelib.build.job import Target
from chalicelib.config import Settings
from chalicelib.jobs import Job, Package
from chalicelib.outcome import check_output, reporting
from chalicelib.sync.signatures import signed_digest


def _where(job: Job, package: Package, checks: bool) -> reporting.BuildReporting | None:
    """Return the reporting target of a one-image job, or None when the job is not one pushed image."""
    tag = job.selection.tag or ""
    if len(job.packages) != 1 or job.selection.all_tags or signed_digest(tag) is not None:
        return None
    return reporting.BuildReporting(installation_id=job.installation_id, owner=package.owner,
                                    repository=package.repository, organization=package.organization,
                                    revision=job.revision or "", checks=checks)


def start(app: Any, config: Settings, job: Job, targets: list[Target]) -> list[dict[str, str]]:
    """Create the queued check run when the job is one pushed image; return the build's reporting variables."""
    variables = {REPORT_BUCKET: config.report_bucket}
    where = _where(job, job.package, targets[0].checks) if len(targets) == 1 else None
    if where is not None:
        target = targets[0]
        output = check_output.started(target.source, target.dest, job.selection.tag or "")
        variables = reporting.start_build_reports(app, where, output, config.report_bucket, _new_id)
    return [variable(k, v) for k, v in variables.items() if v]


def abandon(app: Any, job: Job, variables: list[dict[str, str]], reason: str) -> None:
    """Complete the check run of a build that did not start after all (an earlier build reports the image)."""
    plain = {v["name"]: v["value"] for v in variables if v["type"] == "PLAINTEXT"}
    reporting.abandon_check_run(app, plain, job.installation_id, reason)


def refused(app: Any, job: Job, package: Package, variables: Mapping[str, str], variable: str | None,
            problem: str) -> None:
    """Conclude a check run at once for a sync refused before any build (an invalid variable names it)."""
    raw = {name.upper(): value for name, value in variables.items()}.get("GHCR2ECR_CHECKS", "true")
    where = _where(job, package, raw.strip().lower() != "false")  # GHCR2ECR_CHECKS itself invalid: not false
    if where is not None:
        reporting.report_not_started(app, where, check_output.not_started(variable, problem), _new_id)


def _new_id() -> str:
    """Return an external id for a check run: one per dispatch attempt, so on_build_state completes only its own."""
    return uuid.uuid4().hex

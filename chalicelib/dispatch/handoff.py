"""Dispatch's part in the workflow hand-off: find the installation, apply GHCR2ECR_HANDOFF, keep the record.

A hand-off job arrives with installation id 0 (its route calls no GitHub API): the installation is the one
on the ID token's owner, checked by account id. GHCR2ECR_HANDOFF decides per package: `deny` refuses the
hand-off; `only` makes events and reconcile start nothing for the package. One outcome per digest: an event
for a digest a hand-off mirrors starts no build (DESIGN.md, "The workflow hand-off"; README, "One outcome").
"""

from __future__ import annotations

from dataclasses import replace

from chalicelib.build import token_cleanup
from chalicelib.config import Settings
from chalicelib.dispatch.settings import InstallationConfig
from chalicelib.github.app import GitHubApp, InstallationUnavailable
from chalicelib.handoff import record
from chalicelib.handoff.route import token_parameter
from chalicelib.jobs import Job, Package


def with_installation(app: GitHubApp, job: Job) -> Job | InstallationUnavailable:
    """Return the hand-off's job with its installation filled in, or why there is none."""
    package = job.package
    try:
        installation_id, organization = app.installation_of(package.owner, package.owner_id)
    except InstallationUnavailable as exc:
        return exc
    return replace(job, installation_id=installation_id, packages=(replace(package, organization=organization),))


def gate(config: Settings, job: Job, package: Package, install: InstallationConfig) -> tuple[str, str, str] | None:
    """Return (status, reason, code) when GHCR2ECR_HANDOFF or a hand-off stops this package's sync, else None."""
    if job.origin == "handoff":
        if install.handoff == "deny":
            return "failed", "GHCR2ECR_HANDOFF is deny: this package accepts no hand-off", "handoff_denied"
        return None
    if install.handoff == "only":
        return ("skipped", "GHCR2ECR_HANDOFF is only: a workflow hand-off mirrors this package, events and "
                "reconcile do not", "handoff_only")
    digest = job.selection.digest
    if job.origin == "webhook" and digest and config.report_bucket:
        mirrored = record.mirrored_by_handoff(config.report_bucket, package.owner_id, package.name, digest)
        if mirrored:
            return "skipped", f"hand-off {mirrored} mirrors this digest", "handoff_mirrors"
    return None


def finished(config: Settings, job: Job, status: str, reason: str, code: str, build_id: str | None,
             image: str) -> None:
    """Record what dispatch did with a hand-off: running with its build (and its image reference), or failed."""
    if status == "started":  # `image`: handler.image_reference, a reference without a loopback's http://
        record.update(config.report_bucket, job.correlation_id, status="running", build_id=build_id or "",
                      image=image)
        return
    if code == "already_built":
        return  # a redelivered message: the build the first one started reads the job token, and completes the record
    record.update(config.report_bucket, job.correlation_id, status="failed", reason=reason)
    # Refused for good: the job token's parameter goes now (never revoked: it is the tenant job's).
    token_cleanup.delete_quietly(token_parameter(config, job.correlation_id))

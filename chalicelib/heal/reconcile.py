"""`reconcile`: queue an every-tag sync of every package this deployment mirrors, through the event path.

The packages are found from what the deployment created: each ECR repository under ECR_REPOSITORY_PREFIX
records its source package, owner id, linked repository and installation (chalicelib/registry/ecr.py). The
App's installations (`GET /app/installations`, App JWT) say which owners are still installed: a package
whose owner has no installation, or a suspended one, or that ALLOWED_ACCOUNTS no longer admits, is skipped
with a logged reason (a disabled one is skipped by dispatch, which reads its variables). What is left goes
on the sync queue as jobs of at most 50 packages of one installation: dispatch, token minting, variables,
naming and the build are the ones an event goes through, and one build syncs a whole job in turn.
Deletions are not mirrored: a tag removed from GHCR stays in ECR.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from chalicelib import aws, jobs, logs
from chalicelib.config import ConfigError, settings
from chalicelib.jobs import InvalidJob, Job, Package
from chalicelib.registry import ecr as recorded

if TYPE_CHECKING:
    from chalicelib.github.app import GitHubApp

MAX_INSTALLATION_PAGES = 100  # 10,000 installations
MAX_REPOSITORIES = 10_000  # one ListTagsForResource each (tens of ms): within the Lambda's 5 minutes


@dataclass(frozen=True)
class Installed:
    """One installation of the App, as GitHub lists it."""

    id: int
    login: str
    account_id: int
    organization: bool
    suspended: bool


@dataclass
class Summary:
    """What one reconcile queued and skipped."""

    run_id: str
    packages: int = 0
    jobs: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # package path -> why


def run_id(origin: str, clock: Callable[[], float] = time.time) -> str:
    """Return the run's correlation id: origin and minute, so a retried invocation collapses in the queue."""
    return f"{origin}-" + datetime.fromtimestamp(clock(), timezone.utc).strftime("%Y%m%d%H%M")


def run(owner: str | None = None, package: str | None = None, origin: str = "reconcile", app: GitHubApp | None = None,
        clock: Callable[[], float] = time.time) -> Summary:
    """Find the mirrored packages (optionally of one owner, or one package), queue their jobs; return a summary."""
    from chalicelib.github.client import github_app

    logs.unbind_all()
    summary = Summary(run_id(origin, clock))
    logs.bind(handler="reconcile", origin=origin, delivery=summary.run_id)
    try:
        config = settings()
    except ConfigError as exc:  # deployed before create-app: nothing mirrored yet, and no error every run
        logs.logger.warning("not configured yet; nothing reconciled", extra={"reason": str(exc)})
        return summary
    app = app or github_app()
    by_account = {i.account_id: i for i in installations(app)}
    found = mirrored(config.ecr_repository_prefix)
    if owner and package and not any(p.owner.lower() == owner.lower() and p.name.lower() == package.lower()
                                     for p in found):
        # Not mirrored yet (another name than its repository's): queued as it is named, without linked repository.
        account = next((i for i in by_account.values() if i.login.lower() == owner.lower()), None)
        if account is not None:
            found.append(Package(account.login, account.account_id, package, None, account.organization))
    groups: dict[int, list[Package]] = {}
    for item in found:
        if owner and item.owner.lower() != owner.lower():
            continue
        if package and item.name.lower() != package.lower():
            continue
        installed = by_account.get(item.owner_id)
        why = _skip_reason(item, installed, config)
        if why:
            summary.skipped[item.path] = why
            logs.logger.info("package not reconciled", extra={"package": item.path, "reason": why})
            continue
        assert installed is not None
        # The installation's current login and type: logins can be renamed (FACTS.md §1).
        current = Package(installed.login, item.owner_id, item.name, item.repository, installed.organization)
        groups.setdefault(installed.id, []).append(current)
    for installation_id, packages in sorted(groups.items()):
        for job in jobs.batches(installation_id, packages, origin, summary.run_id):
            _enqueue(job)
            summary.jobs += 1
            summary.packages += len(job.packages)
    logs.logger.info("reconcile queued", extra={"packages": summary.packages, "jobs": summary.jobs,
                                                "skipped": len(summary.skipped)})
    logs.count("ReconcileJobsQueued", summary.jobs)
    return summary


def _skip_reason(item: Package, installed: Installed | None, config: Any) -> str:
    if installed is None:
        return "the App is no longer installed on this account"
    if installed.suspended:
        return f"installation {installed.id} is suspended"
    if not config.account_allowed(installed.login, installed.account_id):
        return f"account {installed.login} is not in ALLOWED_ACCOUNTS"
    return ""


def _enqueue(job: Job) -> None:
    aws.sqs().send_fifo(settings().sync_queue_url, job.to_json(), job.group_id, job.dedup_id)


def installations(app: GitHubApp) -> list[Installed]:
    """List the App's installations (100 per page, bounded); fields validated, unusable entries skipped."""
    found: list[Installed] = []
    for item in app.installations(MAX_INSTALLATION_PAGES):
        account = item.get("account") if isinstance(item, dict) else None
        if not (isinstance(account, dict) and type(item.get("id")) is int and type(account.get("id")) is int
                and isinstance(account.get("login"), str) and jobs.LOGIN.fullmatch(account["login"])):
            continue
        found.append(Installed(item["id"], account["login"], account["id"],
                               item.get("target_type") == "Organization" or account.get("type") == "Organization",
                               bool(item.get("suspended_at"))))
    return found


def mirrored(prefix: str) -> list[Package]:
    """Return the packages recorded on the deployment's ECR repositories (those without a record are skipped)."""
    seam = aws.ecr()
    packages: dict[str, Package] = {}
    for name, arn in seam.repositories_under(prefix, limit=MAX_REPOSITORIES):
        tags = seam.tags(arn)
        owner, owner_id = tags.get(recorded.OWNER_TAG, ""), tags.get(recorded.OWNER_ID_TAG, "")
        package_name = tags.get(recorded.PACKAGE_TAG, "")
        try:
            item = Package(owner, int(owner_id) if owner_id.isdigit() else 0, package_name,
                           tags.get(recorded.LINKED_REPOSITORY_TAG) or None)
            jobs.check(Job(1, (item,), correlation_id="check"))
        except (InvalidJob, ValueError):
            logs.logger.info("ECR repository without a usable ghcr2ecr record skipped", extra={"repository": name})
            continue
        packages.setdefault(item.path, item)
    return list(packages.values())

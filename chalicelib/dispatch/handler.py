"""One queued Job → a scoped installation token in SSM + one CodeBuild build for all its packages.

Transient failures (GitHub 5xx/timeouts, SSM/CodeBuild throttling, `AccountLimitExceededException`) raise,
so SQS redelivers the message and, after the queue's maxReceiveCount, moves it to the dead-letter queue.
Permanent ones (malformed message, disallowed account, installation gone, suspended or of another account
than the package's owner, invalid Actions variables, impossible destination) end the message with an
Outcome whose reason is logged; in a job of several packages they skip that package alone.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from chalicelib import aws, jobs, logs
from chalicelib.dispatch import checks
from chalicelib import names
from chalicelib.build.contract import (API_URL, FALLBACK_TOKEN, INSTALLATION_ID, INSTALLATION_TOKEN, JOB, SOURCE_TOKEN,
                                       variable)
from chalicelib.dispatch import handoff
from chalicelib.build import token_cleanup
from chalicelib.build.job import BuildJob, Target
from chalicelib.config import Settings, settings
from chalicelib.dispatch.settings import InvalidConfig, config_from_variables
from chalicelib.github.app import GitHubApp, InstallationToken, InstallationUnavailable
from chalicelib.github.client import github_app
from chalicelib.jobs import InvalidJob, Job, Package
from chalicelib.sync.signatures import signed_digest

# The build's environment (buildspec/buildspec.yml and `ghcr2ecr run-job` read these names).
CLOCK_SLACK = timedelta(seconds=2)  # between this Lambda's clock and CodeBuild's startTime
TOKEN_MARGIN = 300.0  # seconds before the token expires that the build stops starting syncs


@dataclass(frozen=True)
class Outcome:
    """What dispatch did with one message: started, skipped or failed (permanently), and why."""

    status: str
    reason: str
    build_id: str | None = None
    code: str = ""
    destination: str = ""  # the one package's destination repository, when a build started for one


class StartUncertain(Exception):
    """StartBuild may have started a build whose answer was lost: its token and parameter must stay."""


def permissions_for(job: Job) -> dict[str, str]:
    """Return the token's permissions: pull packages, and read the variables dispatch needs (FACTS.md §4)."""
    wanted = {"packages": "read", "metadata": "read"}
    if any(p.repository is not None for p in job.packages):
        wanted["actions_variables"] = "read"
    if any(p.repository is None and p.organization for p in job.packages):
        wanted["organization_actions_variables"] = "read"
    return wanted


def ecr_registry(config: Settings) -> str:
    """Return the destination registry host: ECR_REGISTRY, else this account's ECR in this region."""
    if config.ecr_registry:
        return config.ecr_registry
    account = urlsplit(config.sync_queue_url).path.strip("/").split("/")[0]  # https://sqs.R.amazonaws.com/ACCT/Q
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return f"{account}.dkr.ecr.{region}.amazonaws.com"


def token_parameter(config: Settings, job: Job) -> str:
    """Return a per-attempt SSM name, `<prefix>/<dedup id>/<random hex>`: a redelivery never rewrites (or
    deletes) the parameter of an earlier build that may still be queued; within SSM's name rules and length."""
    return config.token_parameter_prefix.rstrip("/") + "/" + job.dedup_id + "/" + uuid.uuid4().hex


def is_signature_tag(tag: str) -> bool:
    """Tell whether a tag is cosign's `sha256-<hex>.sig/.att/.sbom` (the engine's own pattern)."""
    return signed_digest(tag) is not None


def build_variables(config: Settings, build: BuildJob, parameter: str, fallback_secret: str | None,
                    installation_parameter: str | None = None) -> list[dict[str, str]]:
    """Return StartBuild's environment overrides: the job in PLAINTEXT, credentials by reference.

    `parameter` holds the first source credential: the installation token, or a hand-off's job token, whose
    build then gets its installation token as INSTALLATION_TOKEN (the one the build revokes).
    """
    plain = {JOB: build.to_json(), API_URL: config.github_api_url, INSTALLATION_ID: str(build.installation_id)}
    # FACTS.md §7: PLAINTEXT values show in the console, BatchGetBuilds and events; credentials go by name.
    variables = [variable(k, v) for k, v in plain.items()]
    variables.append(variable(SOURCE_TOKEN, parameter, "PARAMETER_STORE"))
    if fallback_secret is not None:
        variables.append(variable(FALLBACK_TOKEN, fallback_secret, "SECRETS_MANAGER"))
    if installation_parameter is not None:
        variables.append(variable(INSTALLATION_TOKEN, installation_parameter, "PARAMETER_STORE"))
    return variables


def handle_message(body: str) -> Outcome:
    """Dispatch one queue message; raise on transient failures so SQS redelivers it."""
    logs.unbind_all()
    try:
        return _dispatch(body)
    except Exception as exc:
        # The type only: messages of botocore/githubkit errors name URLs, never credentials, but stay out anyway.
        logs.logger.warning("dispatch failed; SQS will redeliver the message", extra={"error": type(exc).__name__})
        logs.count("TransientFailures")
        raise


def _dispatch(body: str) -> Outcome:
    try:
        job = Job.from_json(body)
    except InvalidJob as exc:
        return _finish(Outcome("failed", str(exc), code="malformed_message"))
    outcome = _dispatch_job(job)  # a raised error: SQS redelivers the message, a hand-off's record waits
    if job.origin == "handoff":  # the hand-off's record says what dispatch did
        handoff.finished(settings(), job, outcome.status, outcome.reason, outcome.code, outcome.build_id,
                         image_reference(outcome.destination, job.selection.digest))
    return outcome


def image_reference(destination: str, digest: str | None) -> str:
    """Return `HOST/REPOSITORY@DIGEST`, an image reference: without the `http://` a loopback destination carries."""
    if not destination or not digest:
        return ""
    return f"{destination.removeprefix('http://')}@{digest}"


def _dispatch_job(job: Job) -> Outcome:
    owner = job.package
    logs.bind(delivery=job.correlation_id, installation=job.installation_id, origin=job.origin,
              package=owner.path if len(job.packages) == 1 else f"{len(job.packages)} packages",
              digest=job.selection.digest, tag=job.selection.tag)
    config = settings()
    if not config.account_allowed(owner.owner, owner.owner_id):
        return _finish(Outcome("failed", f"account {owner.owner} is not in ALLOWED_ACCOUNTS",
                               code="account_not_allowed"))
    app = github_app()
    if job.origin == "handoff":
        found = handoff.with_installation(app, job)
        if isinstance(found, InstallationUnavailable):
            return _finish(Outcome("failed", str(found), code=found.code))
        job = found
        logs.bind(installation=job.installation_id, handoff=job.correlation_id)
    try:
        app.check_installation(job.installation_id, owner.owner_id)
        token = app.mint_token(job.installation_id, jobs.repositories(job.packages), permissions_for(job))
    except InstallationUnavailable as exc:
        return _finish(Outcome("failed", str(exc), code=exc.code))
    keep_token = False
    try:
        outcome = _start(config, app, job, token)
        keep_token = outcome.status == "started"
        return _finish(outcome)
    except StartUncertain:
        keep_token = True  # the build that may have started revokes it; else it expires within the hour
        raise
    finally:
        if not keep_token:  # the build revokes its own token; nobody else will use this one
            _revoke_quietly(app, token)


def _targets(config: Settings, app: GitHubApp, job: Job, token: InstallationToken) -> tuple[list[Target], Outcome]:
    """Resolve each package to a Target (variables, filters, destination); return them and the last skip."""
    targets: list[Target] = []
    skipped = Outcome("skipped", "no package to sync", code="nothing_to_sync")
    for package in job.packages:
        resolved = _target(config, app, job, package, token)
        if isinstance(resolved, Target):
            targets.append(resolved)
            continue
        skipped = resolved
        if len(job.packages) > 1:
            logs.logger.info("package skipped", extra={"package_skipped": package.path, "reason": resolved.reason,
                                                       "code": resolved.code})
    return targets, skipped


def _target(config: Settings, app: GitHubApp, job: Job, package: Package, token: InstallationToken
            ) -> Target | Outcome:
    try:
        variables = app.variables(token, package.owner, package.repository, package.organization)
    except InstallationUnavailable as exc:
        return Outcome("failed", str(exc), code=exc.code)
    try:
        install = config_from_variables(variables)
    except InvalidConfig as exc:
        checks.refused(app, job, package, variables, exc.variable, str(exc))
        return Outcome("failed", str(exc), code="invalid_config")
    if install.unknown:
        logs.logger.warning("unknown GHCR2ECR_* Actions variables ignored", extra={"variables": install.unknown})
    if not install.enabled:
        return Outcome("skipped", "GHCR2ECR_ENABLED is false", code="disabled")
    stopped = handoff.gate(config, job, package, install)
    if stopped is not None:
        status, reason, code = stopped
        return Outcome(status, reason, code=code)
    tag = job.selection.tag
    if tag is not None and is_signature_tag(tag) and not install.signatures:
        # A cosign push is an event of its own. Its tag follows the image it signs, so GHCR2ECR_TAGS does not
        # apply; the build sets it only when the signed image is in the destination (chalicelib/sync/engine.py).
        return Outcome("skipped", f"tag {tag} is a cosign signature and GHCR2ECR_SIGNATURES is false",
                       code="signatures_disabled")
    # GHCR2ECR_TAGS is applied in the build, to every tag it sets: an event whose own tag is filtered out still
    # starts it, since the digest's other tags (aliases) may pass (DESIGN.md, per-installation configuration).
    try:
        repository = names.destination(config.ecr_repository_prefix, package.owner, install.repository or package.name)
    except names.InvalidName as exc:
        variable = "GHCR2ECR_REPOSITORY" if install.repository else "the package name"
        checks.refused(app, job, package, variables, "GHCR2ECR_REPOSITORY" if install.repository else None,
                                 f"destination from {variable}: {exc}")
        return Outcome("failed", f"destination from {variable}: {exc}", code="invalid_destination")
    return Target(package=package.path, source=package.source(config.ghcr_registry),
                  dest=f"{ecr_registry(config)}/{repository}", owner_id=package.owner_id,
                  repository=package.repository, tags=str(install.tags) if install.tags else None,
                  signatures=install.signatures, checks=install.checks)


def _deadline(token: InstallationToken) -> float:
    """Return when the build stops starting syncs: shortly before the token expires (1 hour: FACTS.md §2)."""
    try:
        expires = datetime.strptime(token.expires_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        expires = time.time() + 3600
    return expires - TOKEN_MARGIN


def _start(config: Settings, app: GitHubApp, job: Job, token: InstallationToken) -> Outcome:
    targets, skipped = _targets(config, app, job, token)
    if not targets:
        return skipped
    owner = job.package
    build = BuildJob(origin=job.origin, correlation_id=job.correlation_id, installation_id=job.installation_id,
                     owner=owner.owner, selection=job.selection, targets=tuple(targets),
                     create_repository=config.create_repositories, deadline=_deadline(token))
    secret = config.ghcr_pull_secret_prefix + str(owner.owner_id)
    fallback = secret if aws.secrets_manager().exists(secret) else None
    parameter = token_parameter(config, job)  # the installation token's, written by _start_build
    if job.origin == "handoff":  # the job's GITHUB_TOKEN, stored by the route, is the first source credential
        variables = build_variables(config, build, handoff.token_parameter(config, job.correlation_id), fallback,
                                    installation_parameter=parameter)
    else:
        variables = build_variables(config, build, parameter, fallback)
    variables += checks.start(app, config, job, targets)  # the check run, queued; ids only
    try:
        return _start_build(config, app, job, targets, token, parameter, variables)
    except StartUncertain:
        raise  # the build may have started: it completes its check run
    except BaseException:
        checks.abandon(app, job, variables, "The build could not be started; it is retried.")
        raise


def _start_build(config: Settings, app: GitHubApp, job: Job, targets: list[Target], token: InstallationToken,
                 parameter: str, variables: list[dict[str, str]]) -> Outcome:
    written = datetime.now(timezone.utc) - CLOCK_SLACK
    aws.ssm().put_secret(parameter, token.value,
                         f"ghcr2ecr installation token for one build ({job.origin} {job.correlation_id})")
    try:
        started = aws.codebuild().start_build(config.codebuild_project, variables, idempotency_token=job.dedup_id)
    except BaseException as exc:
        if not aws.answered(exc):
            # The request may have reached CodeBuild and started the build, its answer lost (a read timeout, a
            # dropped connection): that build reads this parameter, so it stays (on_build_state deletes it, or
            # sweep_tokens after the token's hour). SQS redelivers: the repeated idempotency token then gets the
            # mismatch answer (already_built) when the build did start, and starts one when it did not.
            logs.logger.warning("StartBuild's answer was lost; the build may have started, its token is kept",
                                extra={"error": type(exc).__name__, "token_parameter": parameter})
            raise StartUncertain(type(exc).__name__) from exc
        token_cleanup.delete_quietly(parameter)  # this attempt's own parameter: an earlier build's is another name
        if aws.idempotency_mismatch(exc):
            checks.abandon(app, job, variables, "An earlier build of this image reports its outcome.")
            return Outcome("skipped", "a build for this request was already started (CodeBuild refused the "
                           "repeated idempotency token with this attempt's token parameter)", code="already_built")
        raise
    # The same idempotency token within 5 minutes, with this attempt's new parameter name: CodeBuild documents
    # "a parameter mismatch error" (handled above). Should it hand back the earlier build instead, that build
    # started before this parameter was written and reads its own parameter: this one goes now. Either way
    # handle_message revokes the token of what was not started.
    if started.began_before(written):
        token_cleanup.delete_quietly(parameter)
        checks.abandon(app, job, variables, "An earlier build of this image reports its outcome.")
        return Outcome("skipped", f"build {started.id} for this request was already started", build_id=started.id,
                       code="already_built")
    what = targets[0].dest.removeprefix("http://").split("/", 1)[1] if len(targets) == 1 else f"{len(targets)} packages"
    return Outcome("started", f"build started for {what}", build_id=started.id, code="started",
                   destination=targets[0].dest if len(targets) == 1 else "")
def _finish(outcome: Outcome) -> Outcome:
    fields: dict[str, Any] = {"outcome": outcome.status, "reason": outcome.reason, "code": outcome.code}
    if outcome.build_id:
        fields["build_id"] = outcome.build_id
    if outcome.status == "failed":
        logs.logger.error("sync not started", extra=fields)
        logs.count("Failures", reason=outcome.code)
    elif outcome.status == "skipped":
        logs.logger.info("sync skipped", extra=fields)
        logs.count("SyncsSkipped", reason=outcome.code)
    else:
        logs.logger.info("build started", extra=fields)
        logs.count("BuildsStarted")
    return outcome


def _revoke_quietly(app: GitHubApp, token: InstallationToken) -> None:
    try:
        app.revoke(token)
    except Exception as exc:  # it expires within the hour anyway; never hide the original outcome
        logs.logger.warning("could not revoke an unused installation token", extra={"error": type(exc).__name__})

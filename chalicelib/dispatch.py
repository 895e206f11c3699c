"""One queued SyncRequest → a scoped installation token in SSM + one CodeBuild build.

Transient failures (GitHub 5xx/timeouts, SSM/CodeBuild throttling, `AccountLimitExceededException`) raise,
so SQS redelivers the message and, after the queue's maxReceiveCount, moves it to the dead-letter queue.
Permanent ones (malformed message, disallowed account, installation gone, suspended or of another account
than the package's owner, invalid Actions variables, impossible destination) end the message with an
Outcome whose reason is logged.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from chalicelib import aws, logs, naming
from chalicelib.config import Settings, settings
from chalicelib.installations import (
    GitHubApp, InstallationConfig, InstallationToken, InstallationUnavailable, InvalidConfig, config_from_variables,
)
from chalicelib.webhooks import MalformedDelivery, SyncRequest

# The build's environment (buildspec/buildspec.yml reads these names).
SOURCE, DEST, DIGEST, TAG = "GHCR2ECR_SOURCE", "GHCR2ECR_DEST", "GHCR2ECR_DIGEST", "GHCR2ECR_TAG"
SIGNATURES, INSTALLATION_ID, DELIVERY_ID = "GHCR2ECR_SIGNATURES", "GHCR2ECR_INSTALLATION_ID", "GHCR2ECR_DELIVERY_ID"
API_URL, SOURCE_TOKEN, FALLBACK_TOKEN = "GITHUB_API_URL", "GHCR2ECR_SOURCE_TOKEN", "GHCR2ECR_SOURCE_FALLBACK_TOKEN"
CREATE_REPOSITORY, OWNER_ID = "GHCR2ECR_CREATE_REPOSITORY", "GHCR2ECR_OWNER_ID"
KEY_MAX_AGE = 900  # seconds the App's private key is cached per container (docs/operators.md says so)
CLOCK_SLACK = timedelta(seconds=2)  # between this Lambda's clock and CodeBuild's startTime


@dataclass(frozen=True)
class Outcome:
    """What dispatch did with one message: started, skipped or failed (permanently), and why."""

    status: str
    reason: str
    build_id: str | None = None
    code: str = ""


def permissions_for(request: SyncRequest) -> dict[str, str]:
    """Return the token's permissions: pull packages, and read the variables dispatch needs (FACTS.md §4)."""
    wanted = {"packages": "read", "metadata": "read"}
    if request.repository is not None:
        wanted["actions_variables"] = "read"
    elif request.organization:
        wanted["organization_actions_variables"] = "read"
    return wanted


def ecr_registry(config: Settings) -> str:
    """Return the destination registry host: ECR_REGISTRY, else this account's ECR in this region."""
    if config.ecr_registry:
        return config.ecr_registry
    account = urlsplit(config.sync_queue_url).path.strip("/").split("/")[0]  # https://sqs.R.amazonaws.com/ACCT/Q
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return f"{account}.dkr.ecr.{region}.amazonaws.com"


def token_parameter(config: Settings, request: SyncRequest) -> str:
    """Return a per-attempt SSM name, `<prefix>/<dedup id>/<random hex>`: a redelivery never rewrites (or
    deletes) the parameter of an earlier build that may still be queued; within SSM's name rules and length."""
    return config.token_parameter_prefix.rstrip("/") + "/" + request.dedup_id + "/" + uuid.uuid4().hex


def is_signature_tag(tag: str) -> bool:
    """Tell whether a tag is cosign's `sha256-<hex>.sig/.att/.sbom` (the engine's own pattern)."""
    # Imported here: the copy engine is not on the webhook route's import path (app.py imports this module).
    from chalicelib.registry.signatures import signed_digest

    return signed_digest(tag) is not None


_apps: dict[str, GitHubApp] = {}


def github_app() -> GitHubApp:
    """Return this container's App client; the private key is read from SSM at most every 15 minutes, so a
    rotated key is picked up without a redeploy."""
    config = settings()
    key = aws.ssm().get_secret(config.github_private_key_parameter, max_age=KEY_MAX_AGE)
    app = _apps.get(key)
    if app is None:
        _apps.clear()
        app = _apps[key] = GitHubApp(config.github_app_id, key, config.github_api_url)
    return app


def reset_github_app() -> None:
    """Forget the App client (tests; a new environment)."""
    _apps.clear()


def build_variables(config: Settings, request: SyncRequest, install: InstallationConfig, dest: str,
                    parameter: str, fallback_secret: str | None) -> list[dict[str, str]]:
    """Return StartBuild's environment overrides: names and ids in PLAINTEXT, credentials by reference."""
    plain = {
        SOURCE: request.source(config.ghcr_registry), DEST: dest, DIGEST: request.digest, TAG: request.tag,
        SIGNATURES: str(install.signatures).lower(), API_URL: config.github_api_url,
        INSTALLATION_ID: str(request.installation_id), DELIVERY_ID: request.delivery_id,
        CREATE_REPOSITORY: str(config.create_repositories).lower(),
        OWNER_ID: str(request.owner_id),  # the engine records it on the ECR repository: logins can be renamed
    }
    # FACTS.md §7: PLAINTEXT values show in the console, BatchGetBuilds and events; credentials go by name.
    variables = [{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in plain.items()]
    variables.append({"name": SOURCE_TOKEN, "value": parameter, "type": "PARAMETER_STORE"})
    if fallback_secret is not None:
        variables.append({"name": FALLBACK_TOKEN, "value": fallback_secret, "type": "SECRETS_MANAGER"})
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
        request = SyncRequest.from_json(body)
    except MalformedDelivery as exc:
        return _finish(Outcome("failed", str(exc), code="malformed_message"))
    logs.bind(delivery=request.delivery_id, installation=request.installation_id,
              package=request.package_path, digest=request.digest, tag=request.tag)
    config = settings()
    if not config.account_allowed(request.owner, request.owner_id):
        return _finish(Outcome("failed", f"account {request.owner} is not in ALLOWED_ACCOUNTS",
                               code="account_not_allowed"))
    app = github_app()
    repositories = [request.repository] if request.repository is not None else None
    try:
        app.check_installation(request.installation_id, request.owner_id)
        token = app.mint_token(request.installation_id, repositories, permissions_for(request))
    except InstallationUnavailable as exc:
        return _finish(Outcome("failed", str(exc), code=exc.code))
    started = False
    try:
        outcome = _start(config, app, request, token)
        started = outcome.status == "started"
        return _finish(outcome)
    finally:
        if not started:  # the build revokes its own token; nobody else will use this one
            _revoke_quietly(app, token)


def _start(config: Settings, app: GitHubApp, request: SyncRequest, token: InstallationToken) -> Outcome:
    try:
        variables = app.variables(token, request.owner, request.repository, request.organization)
    except InstallationUnavailable as exc:
        return Outcome("failed", str(exc), code=exc.code)
    try:
        install = config_from_variables(variables)
    except InvalidConfig as exc:
        return Outcome("failed", str(exc), code="invalid_config")
    if install.unknown:
        logs.logger.warning("unknown GHCR2ECR_* Actions variables ignored", extra={"variables": install.unknown})
    if not install.enabled:
        return Outcome("skipped", "GHCR2ECR_ENABLED is false", code="disabled")
    if is_signature_tag(request.tag):
        # A cosign push is an event of its own. Its tag follows the image it signs, so GHCR2ECR_TAGS does not
        # apply; the build sets it only when the signed image is in the destination (chalicelib/sync.py).
        if not install.signatures:
            return Outcome("skipped", f"tag {request.tag} is a cosign signature and GHCR2ECR_SIGNATURES is false",
                           code="signatures_disabled")
    elif not install.wants(request.tag):
        return Outcome("skipped", f"tag {request.tag} is not selected by GHCR2ECR_TAGS={install.tags}",
                       code="tag_filtered")
    try:
        repository = naming.destination(config.ecr_repository_prefix, request.owner,
                                        install.repository or request.package)
    except naming.InvalidName as exc:
        variable = "GHCR2ECR_REPOSITORY" if install.repository else "the package name"
        return Outcome("failed", f"destination from {variable}: {exc}", code="invalid_destination")
    secret = config.ghcr_pull_secret_prefix + str(request.owner_id)
    fallback = secret if aws.secrets_manager().exists(secret) else None
    parameter = token_parameter(config, request)
    written = datetime.now(timezone.utc) - CLOCK_SLACK
    aws.ssm().put_secret(parameter, token.value,
                         f"ghcr2ecr installation token for one build (delivery {request.delivery_id})")
    try:
        build = aws.codebuild().start_build(
            config.codebuild_project,
            build_variables(config, request, install, f"{ecr_registry(config)}/{repository}", parameter, fallback),
            idempotency_token=request.dedup_id,
        )
    except BaseException as exc:
        _delete_quietly(parameter)  # this attempt's own parameter: an earlier build's is another name
        if aws.idempotency_mismatch(exc):
            return Outcome("skipped", "a build for this request was already started (CodeBuild refused the "
                           "repeated idempotency token with this attempt's token parameter)", code="already_built")
        raise
    # The same idempotency token within 5 minutes, with this attempt's new parameter name: CodeBuild documents
    # "a parameter mismatch error" (handled above). Should it hand back the earlier build instead, that build
    # started before this parameter was written and reads its own parameter: this one goes now. Either way
    # handle_message revokes the token of what was not started.
    if build.began_before(written):
        _delete_quietly(parameter)
        return Outcome("skipped", f"build {build.id} for this request was already started", build_id=build.id,
                       code="already_built")
    return Outcome("started", f"build started for {repository}", build_id=build.id, code="started")


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


def _delete_quietly(parameter: str) -> None:
    try:
        aws.ssm().delete(parameter)
    except Exception as exc:
        logs.logger.warning("could not delete a token parameter", extra={"parameter": parameter,
                                                                        "error": type(exc).__name__})

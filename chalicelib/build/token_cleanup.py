"""Installation tokens left in SSM: `on_build_state` revokes a build's token with itself, then deletes its parameter;
the hourly `sweep_tokens` deletes the parameters no build event cleaned up.

The build revokes its token in the buildspec's `finally`, but not when it fails before `finally`, so
`on_build_state` revokes the finished build's token again (401, already revoked, is fine). A token written by a
dispatch that never reached `StartBuild` (the Lambda died after writing it) has no build event: once its
parameter is older than a token's lifetime (FACTS.md §2: 1 hour) the token has expired, and the sweep deletes
the parameter without reading its value or calling GitHub.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from chalicelib import aws, logs
from chalicelib.config import setting
from chalicelib.github.revoke import revoke

TOKEN_LIFETIME = timedelta(hours=1)
REVOKE_TIMEOUT_SECONDS = 5.0  # three attempts and their pauses fit in on_build_state's 30 s
SWEEP_LIMIT = 500  # deletions per sweep (tens of ms each): well within the Lambda's timeout; the rest an hour later


@dataclass(frozen=True)
class Cleanup:
    """What happened to one token parameter: revocation result and whether the parameter was deleted."""

    parameter: str
    revoked: str  # "revoked" | "already invalid" | "failed" | "absent" (no parameter)
    deleted: bool


def token_prefix() -> str:
    """Return TOKEN_PARAMETER_PREFIX with one trailing slash (read alone: the sweep runs before create-app)."""
    return setting("TOKEN_PARAMETER_PREFIX").rstrip("/") + "/"


def is_token_parameter(name: str) -> bool:
    """Tell whether a parameter name lies strictly under TOKEN_PARAMETER_PREFIX (never touch anything else)."""
    prefix = token_prefix()
    return name.startswith(prefix) and len(name) > len(prefix) and ".." not in name


def is_job_token_parameter(name: str) -> bool:
    """Tell whether a parameter holds a hand-off's job token (`<prefix>/handoff/<id>`): never ours to revoke."""
    return is_token_parameter(name) and name[len(token_prefix()):].startswith("handoff/")


def revoke_and_delete(parameter: str) -> Cleanup:
    """Revoke the token a parameter holds, then delete the parameter (kept for the sweep when revoking failed)."""
    # The name is per dispatch attempt (chalicelib/dispatch/handler.py): only the build started with it reads it.
    if is_job_token_parameter(parameter):  # a tenant job's GITHUB_TOKEN: deleted, never revoked
        return Cleanup(parameter, "not ours", delete_only(parameter))
    ssm = aws.ssm()
    token = ssm.read_secret(parameter)
    if token is None:
        return Cleanup(parameter, "absent", False)
    try:
        result = revoke(token, setting("GITHUB_API_URL"), timeout=REVOKE_TIMEOUT_SECONDS)
    except RuntimeError as exc:  # the message names the API URL and an HTTP status, never the token
        logs.logger.warning("could not revoke a build's installation token", extra={
            "parameter": parameter, "error": str(exc)})
        result = "failed"
    deleted = ssm.delete(parameter) if result != "failed" else False
    return Cleanup(parameter, result, deleted)


def delete_only(parameter: str) -> bool:
    """Delete a hand-off's job-token parameter without revoking the token (it is the tenant job's, not ours)."""
    if not is_token_parameter(parameter):
        return False
    return aws.ssm().delete(parameter)


def delete_quietly(parameter: str) -> None:
    """Delete a token parameter now; when SSM fails, log it and leave the parameter to the hourly sweep."""
    try:
        aws.ssm().delete(parameter)
    except Exception as exc:
        logs.logger.warning("could not delete a token parameter", extra={"parameter": parameter,
                                                                        "error": type(exc).__name__})


def sweep(now: datetime | None = None, max_age: timedelta = TOKEN_LIFETIME) -> list[str]:
    """Delete the token parameters last written more than `max_age` ago; log a line for each; return their names."""
    logs.unbind_all()
    now = now or datetime.now(timezone.utc)
    ssm = aws.ssm()
    removed: list[str] = []
    for name, modified in ssm.parameters_under(token_prefix().rstrip("/")):
        if not is_token_parameter(name) or now - modified <= max_age:
            continue
        if len(removed) == SWEEP_LIMIT:
            break
        ssm.delete(name)
        logs.logger.warning("stale token parameter removed", extra={
            "parameter": name, "age_seconds": int((now - modified).total_seconds())})
        removed.append(name)
    if removed:
        logs.count("StaleTokensRemoved")
    return removed

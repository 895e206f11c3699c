"""Installation tokens left in SSM: revoke each with itself (`DELETE /installation/token`), then delete it.

The build revokes its token in the buildspec's `finally`, but not when it fails before `finally`; and a
token written by a dispatch that never reached `StartBuild` (the Lambda died after writing it) has no build
to revoke it. `on_build_state` therefore revokes the finished build's token again (401, already revoked, is
fine), and `sweep_tokens` revokes and deletes every token parameter older than a token's lifetime
(FACTS.md §2: 1 hour).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from chalicelib import aws, logs, revoke
from chalicelib.config import settings

TOKEN_LIFETIME = timedelta(hours=1)
REVOKE_TIMEOUT_SECONDS = 5.0  # three attempts and their pauses fit in on_build_state's 30 s
SWEEP_LIMIT = 50  # parameters per sweep: bounded within the Lambda's timeout; the rest go an hour later


@dataclass(frozen=True)
class Cleanup:
    """What happened to one token parameter: revocation result and whether the parameter was deleted."""

    parameter: str
    revoked: str  # "revoked" | "already invalid" | "failed" | "absent" (no parameter)
    deleted: bool


def is_token_parameter(name: str) -> bool:
    """Tell whether a parameter name lies strictly under TOKEN_PARAMETER_PREFIX (never touch anything else)."""
    prefix = settings().token_parameter_prefix.rstrip("/") + "/"
    return name.startswith(prefix) and len(name) > len(prefix) and ".." not in name


def revoke_and_delete(parameter: str, token: str | None = None, *, delete_unrevoked: bool = False) -> Cleanup:
    """Revoke the token a parameter holds, then delete the parameter (kept when revoking failed, unless told)."""
    # The name is per dispatch attempt (chalicelib/dispatch.py): only the build started with it reads it.
    ssm = aws.ssm()
    if token is None:
        token = ssm.read_secret(parameter)
        if token is None:
            return Cleanup(parameter, "absent", False)
    try:
        result = revoke.revoke(token, settings().github_api_url, timeout=REVOKE_TIMEOUT_SECONDS)
    except RuntimeError as exc:  # the message names the API URL and an HTTP status, never the token
        logs.logger.warning("could not revoke a build's installation token", extra={
            "parameter": parameter, "error": str(exc)})
        result = "failed"
    deleted = ssm.delete(parameter) if result != "failed" or delete_unrevoked else False
    return Cleanup(parameter, result, deleted)


def sweep(now: datetime | None = None, max_age: timedelta = TOKEN_LIFETIME) -> list[Cleanup]:
    """Revoke and delete the token parameters last written more than `max_age` ago; log a line for each."""
    logs.unbind_all()
    now = now or datetime.now(timezone.utc)
    prefix = settings().token_parameter_prefix.rstrip("/")
    done = []
    for name, token, modified in aws.ssm().secrets_under(prefix):
        if not is_token_parameter(name) or now - modified <= max_age:
            continue
        if len(done) == SWEEP_LIMIT:
            break
        # Past its lifetime the token has expired (401): the parameter goes whatever GitHub answers.
        cleanup = revoke_and_delete(name, token, delete_unrevoked=True)
        logs.logger.warning("stale token parameter removed", extra={
            "parameter": name, "age_seconds": int((now - modified).total_seconds()), "revoked": cleanup.revoked})
        done.append(cleanup)
    if done:
        logs.count("StaleTokensRemoved")
    return done

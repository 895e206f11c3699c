"""The seam's one exception root, and githubkit's errors mapped onto it (callers never import githubkit).

GitHubError carries GitHub's HTTP status (None when nothing answered); its leaves say what a caller may do:
GitHubUnavailable (no useful answer after the bounded retries: a timeout, no connection, 5xx, a rate limit),
GitHubRefused (a 4xx that the same request would get again), InstallationUnavailable (an installation GitHub
refuses for good). Messages name the call and GitHub's own text, never a credential.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any


class GitHubError(Exception):
    """A GitHub call failed; `status` is GitHub's HTTP status (None: no answer), `reason` GitHub's message."""

    def __init__(self, message: str, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class GitHubUnavailable(GitHubError):
    """GitHub gave no useful answer after the bounded retries: a timeout, no connection, a 5xx or a rate limit."""


class GitHubRefused(GitHubError):
    """GitHub refused the request (a 4xx that is not a rate limit): the same request would be refused again."""


class InstallationUnavailable(GitHubError):
    """GitHub refuses this installation for good (uninstalled, suspended, repository or permission not granted)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@contextlib.contextmanager
def mapped(call: str) -> Iterator[None]:
    """Raise githubkit's errors from the block as GitHubUnavailable or GitHubRefused, naming `call`."""
    from githubkit.exception import GitHubException, RequestFailed

    try:
        yield
    except RequestFailed as exc:
        status, reason = exc.response.status_code, message(exc)
        kind = GitHubUnavailable if status >= 500 or rate_limited(exc) else GitHubRefused
        raise kind(f"{call}: HTTP {status} {reason}".rstrip(), status, reason) from exc
    except GitHubException as exc:  # RequestTimeout, or RequestError: no connection (the type only)
        raise GitHubUnavailable(f"{call}: no answer ({_cause(exc)})") from exc


def rate_limited(exc: Any) -> bool:
    """Tell whether a failed GitHub response is a rate limit (transient, so raised), not a refusal."""
    # docs.github.com rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit: primary and
    # secondary limits answer 403 or 429, with `x-ratelimit-remaining: 0` or `retry-after`, or only a message
    # naming the secondary rate limit (githubkit raises its RateLimitExceeded for the first two only).
    from githubkit.exception import RateLimitExceeded

    if isinstance(exc, RateLimitExceeded):
        return True
    response = exc.response
    if response.status_code == 429:
        return True
    if response.status_code != 403:
        return False
    headers = response.headers
    return ("retry-after" in headers or headers.get("x-ratelimit-remaining") == "0"
            or "rate limit" in message(exc).lower())


def message(exc: Any) -> str:
    """Return GitHub's error message from a failed response, on one line (GitHub's own text, never a credential)."""
    try:
        text = exc.response.json().get("message", "")
    except Exception:
        text = ""
    return re.sub(r"\s+", " ", str(text)).strip()[:200]


def _cause(exc: Any) -> str:
    """Name what went wrong without a URL or header: httpx's exception type (ConnectError, ReadTimeout...)."""
    return type(getattr(exc, "exc", None) or exc).__name__

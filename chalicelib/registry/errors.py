"""The registry client's exceptions: one typed error with the status and the registry's error list.

No exception here ever holds a request header, a token or a password: only the method, the URL
without its query string, the status code and the `errors` array the registry sent back
(distribution spec, "Error Codes").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import httpx

from chalicelib.registry.redact import redact

def _short_url(url: str | httpx.URL) -> str:
    """Drop the query string (upload `_state`, presigned parameters) from a URL shown in a message."""
    return str(url).split("?", 1)[0]


def parse_error_list(body: bytes) -> list[dict[str, str]]:
    """Read `{"errors": [{"code", "message"}]}` from a response body; [] when it is something else."""
    try:
        document: Any = json.loads(body[:65536] or b"{}")
    except (ValueError, UnicodeDecodeError):
        return []
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return []
    return [
        {"code": redact(str(item.get("code", "")))[:100], "message": redact(str(item.get("message", "")))[:300]}
        for item in errors
        if isinstance(item, dict)
    ]


class CopyError(Exception):
    """The root of every error copying between registries: a caller catches this, a test asserts a leaf."""


class RegistryError(CopyError):
    """A registry answered with an unexpected status (or could not be reached)."""

    def __init__(
        self,
        method: str,
        url: str | httpx.URL,
        status: int | None,
        errors: Sequence[dict[str, str]] = (),
        detail: str = "",
    ) -> None:
        self.method = method
        self.url = _short_url(url)
        self.status = status
        self.errors = list(errors)
        self.detail = detail
        super().__init__(self._message())

    @classmethod
    def from_response(cls, response: httpx.Response, detail: str = "") -> RegistryError:
        """Build the error from a response whose body has been read."""
        return cls(response.request.method, response.request.url, response.status_code,
                   parse_error_list(response.content), detail)

    @property
    def codes(self) -> set[str]:
        """Return the registry's error codes (`MANIFEST_UNKNOWN`, `DENIED`, ...)."""
        return {item["code"] for item in self.errors}

    def _message(self) -> str:
        """Render one line: what was asked, the answer, the registry's own words."""
        status = f"HTTP {self.status}" if self.status is not None else "no answer"
        parts = [f"{self.method} {self.url}: {status}"]
        parts += [f"{item['code']}: {item['message']}".strip(": ") for item in self.errors]
        if self.detail:
            parts.append(self.detail)
        return redact("; ".join(parts))


class RegistryUnavailable(RegistryError):
    """The registry could not be reached (connection refused, reset, timeouts) after every retry."""


class RefusedValue(RegistryError):
    """A value from a registry (tag, digest, path, size) refused before any request used it; never retried."""

    def __init__(self, method: str, url: str | httpx.URL, detail: str) -> None:
        super().__init__(method, url, None, detail=detail)

    def _message(self) -> str:
        """Lead with what was refused, then the request it was for."""
        return redact(f"{self.detail} [{self.method} {self.url}]")


class ResponseTooLarge(RefusedValue):
    """An answer that is not a blob was larger than its cap (a token, a tags page, a manifest ...)."""

    def __init__(self, method: str, url: str | httpx.URL, what: str, limit: int) -> None:
        super().__init__(method, url, f"{what} is larger than {limit} bytes; refused")


class DeadlineExceeded(RegistryUnavailable):
    """A request (every attempt, or one attempt's answer) did not complete within its deadline."""


class RedirectTargetRefused(RegistryError):
    """A redirect target (a CDN's signed URL) answered 401/403; a fresh redirect from the registry may work."""


class AccessDenied(RegistryError):
    """Every credential was refused for this repository; names them by kind, never by value."""

    def __init__(self, method: str, url: str | httpx.URL, status: int | None, repository: str,
                 tried: Sequence[str], hint: str, errors: Sequence[dict[str, str]] = ()) -> None:
        self.repository = repository
        self.tried = list(tried)
        self.hint = hint
        detail = f"access to {repository} denied (tried: {', '.join(tried) or 'nothing'}); {hint}"
        super().__init__(method, url, status, errors, detail)

    def _message(self) -> str:
        """Lead with the denial, then the request that showed it."""
        status = f"HTTP {self.status}" if self.status is not None else "no answer"
        return redact(f"{self.detail} [{self.method} {self.url}: {status}]")


class DigestMismatch(CopyError):
    """Bytes read from the source do not hash to the digest that names them."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(redact(f"digest mismatch for {what}: expected {expected}, "
                                f"source sent bytes hashing to {actual}"))


class UnsupportedManifest(CopyError):
    """A manifest this copier refuses (Docker schema 1, unknown media types)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


def describe_unexpected(exc: BaseException, secrets: Iterable[str]) -> str:
    """Describe an exception no one expected in one line, without query strings or any of `secrets`."""
    message = redact(re.sub(r"\?\S*", "", " ".join(str(exc).split())))
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        message = message.replace(secret, "<redacted>")
    return f"internal error: {type(exc).__name__}: {message[:300]}".rstrip(": ")

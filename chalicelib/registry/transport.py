"""HTTP to one registry repository: timeouts, bounded retries with backoff, and the auth handshake.

Retried (bounded, with backoff, `sleep` injectable): connection errors and timeouts, 429 (honouring
`Retry-After`, capped) and 5xx. A request whose body is a stream cannot be replayed, so it is tried
once and its caller (the blob copy) retries the whole operation.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import re
import time
from urllib.parse import unquote, urlsplit
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from chalicelib.registry.auth import Authenticator, TokenDenied
from chalicelib.registry.errors import (AccessDenied, DeadlineExceeded, RedirectTargetRefused, RefusedValue,
                                       RegistryError, RegistryUnavailable)
from chalicelib.registry.limits import DEADLINE_KEY, Limits, attempt_timeout, read_capped
from chalicelib.registry.reference import Repository, shown

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=60.0)
Scopes = Sequence[tuple[str, str]]
MAX_WARNINGS = 20


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before retrying a transient failure."""

    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 30.0

    def delay(self, attempt: int, response: httpx.Response | None = None) -> float:
        """Return the wait before retry number `attempt` (1-based), honouring Retry-After on a 429/503."""
        wait = min(self.backoff * (2 ** (attempt - 1)), self.max_backoff)
        if response is not None and "retry-after" in response.headers:
            asked = _retry_after_seconds(response.headers["retry-after"])
            if asked is not None:
                wait = max(0.0, min(asked, self.max_retry_after))
        return wait


def _retry_after_seconds(value: str) -> float | None:
    """Read Retry-After as seconds or an HTTP date (RFC 9110 §10.2.3)."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def _transient(status: int) -> bool:
    """Tell whether a status is worth retrying (429 and 5xx)."""
    return status == 429 or status >= 500


class Transport:
    """Requests against one repository's registry, authenticated with a credential chain."""

    def __init__(self, repository: Repository, authenticator: Authenticator, *, role: str, hint: str,
                 client: httpx.Client | None = None, retry: RetryPolicy = RetryPolicy(),
                 sleep: Callable[[float], None] = time.sleep, limits: Limits = Limits()) -> None:
        self.repository = repository
        self.auth = authenticator
        self.role = role  # "source" or "destination", for messages
        self.hint = hint  # what the operator can do when access is denied
        self.retry = retry
        self.sleep = sleep
        self.limits = limits
        self.client = client or httpx.Client(timeout=DEFAULT_TIMEOUT)
        self.warnings: list[str] = []  # what this end noticed and worked around (the report lists them)

    def warn(self, message: str) -> None:
        """Log a warning and keep it for the report, once (at most MAX_WARNINGS kept)."""
        if message in self.warnings:
            return
        log.warning("%s", message)
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)

    def url(self, path: str, method: str = "GET") -> str:
        """Turn `/v2/...` (or an absolute Location) into a URL on this registry.

        A URL on this registry must stay inside this repository: `/v2/<name>/...`, no `.`/`..` segment
        (httpx would collapse it, escaping the repository), no encoded `/` or dot segment. Else RefusedValue.
        """
        url = path if path.startswith(("http://", "https://")) else self.repository.base_url + path
        try:
            same = self._same_origin(url)
        except httpx.InvalidURL:
            raise RefusedValue(method, shown(url.split("?", 1)[0], 160), f"{self.role} registry: not a valid URL") \
                from None
        if same:
            self._check_path(method, urlsplit(url).path, url)
        return url

    def _check_path(self, method: str, raw_path: str, url: str) -> None:
        """Refuse a path outside `/v2/<name>/` or with segments that could change its structure."""
        prefix = f"/v2/{self.repository.name}/"
        segments = raw_path.split("/")
        bad = [s for s in segments if unquote(s) in (".", "..") or any(c in unquote(s) for c in "/\\?#")]
        if raw_path == "/v2/":  # the API version check names no repository
            return
        if bad or not raw_path.startswith(prefix) or "" in segments[1:-1]:
            raise RefusedValue(method, shown(url.split("?", 1)[0], 160),
                               f"refusing a {self.role} request path outside {self.repository}: a value from the "
                               "registry would change the path's structure")

    def send(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
             params: Any = None, content: bytes | Iterable[bytes] | None = None, stream: bool = False,
             follow_redirects: bool = False, auth: httpx.Auth | None = None, once: bool = False,
             max_bytes: int | None = None, blob: bool = False, started: float | None = None) -> httpx.Response:
        """Send without the auth handshake, retrying connection errors, timeouts, 429 and 5xx when replayable.

        Every attempt has a deadline (Limits.request_deadline, headers and body; `blob`: none, the blob
        copy enforces a minimum throughput instead) and all attempts share Limits.give_up_after, counted
        from `started` (the auth handshake's requests share one budget). Unless
        `stream`, the body is read here through a byte counter: a 2xx body over `max_bytes` (default
        Limits.max_body) is refused, any other body is cut at Limits.max_error_body.
        """
        replayable = (content is None or isinstance(content, bytes)) and not once
        started, attempt = started or time.monotonic(), 0
        while True:
            attempt += 1
            left = self.limits.give_up_after - (time.monotonic() - started)
            if left <= 0:  # the handshake before this request spent the budget
                raise DeadlineExceeded(method, url, None, detail=f"{self.role} registry: gave up after "
                                       f"{self.limits.give_up_after:.0f}s (GHCR2ECR_REQUEST_GIVE_UP)")
            timeout, deadline = attempt_timeout(self.limits, left, blob)
            request = self.client.build_request(method, url, headers=headers, params=params, content=content,
                                                timeout=timeout)
            request.extensions[DEADLINE_KEY] = deadline
            try:
                response = self.client.send(request, stream=True, follow_redirects=follow_redirects,
                                            auth=auth or httpx.USE_CLIENT_DEFAULT)
                if not stream:
                    ok = 200 <= response.status_code < 300
                    cap = (max_bytes or self.limits.max_body) if ok else self.limits.max_error_body
                    response = read_capped(response, cap, f"the {self.role} registry's answer", truncate=not ok)
            except (httpx.TransportError, DeadlineExceeded) as exc:
                why = type(exc).__name__ if isinstance(exc, httpx.TransportError) else "deadline exceeded"
                wait = self.retry.delay(attempt)
                spent = time.monotonic() - started
                out_of_time = spent + wait >= self.limits.give_up_after
                if not replayable or attempt >= self.retry.attempts or out_of_time:
                    error = DeadlineExceeded if out_of_time or why == "deadline exceeded" else RegistryUnavailable
                    budget = f" (gave up after {spent:.0f}s: GHCR2ECR_REQUEST_GIVE_UP)" if out_of_time else ""
                    raise error(method, url, None, detail=f"{self.role} registry unreachable after {attempt} "
                                f"attempt(s): {why}{budget}") from None
                log.warning("%s %s: %s; retry %d in %.1fs", method, url.split("?")[0], why, attempt, wait)
                self.sleep(wait)
                continue
            except httpx.HTTPError as exc:  # not a connection failure: a redirect loop, a malformed answer
                raise RegistryError(method, url, None, detail=f"{self.role} registry: {type(exc).__name__}: "
                                    f"{_first_line(exc)}") from None
            spent = time.monotonic() - started
            if _transient(response.status_code) and replayable and attempt < self.retry.attempts:
                wait = self.retry.delay(attempt, response)
                if spent + wait < self.limits.give_up_after:
                    response.close()
                    log.warning("%s %s: HTTP %d; retry %d in %.1fs", method, url.split("?")[0],
                                response.status_code, attempt, wait)
                    self.sleep(wait)
                    continue
            return response

    def request(self, method: str, path: str, *, scopes: Scopes, headers: Mapping[str, str] | None = None,
                params: Any = None, content: bytes | Iterable[bytes] | None = None, stream: bool = False,
                follow_redirects: bool = False, once: bool = False, max_bytes: int | None = None,
                blob: bool = False) -> httpx.Response:
        """Send with authentication: answer 401 challenges and move down the chain on denial.

        Returns the response for any status except 401/403 (auth), and except 429/5xx while retries last
        (`once`: no retries). The credential goes only to this registry's own origin: an upload Location
        or a `Link` pointing elsewhere gets no Authorization header, and a 401/403 from a redirect target
        raises RedirectTargetRefused (retryable) without touching the credential chain.
        """
        url = self.url(path, method)
        started = time.monotonic()
        if not self._same_origin(url):
            return self.send(method, url, headers=headers, params=params, content=content, stream=stream,
                             follow_redirects=follow_redirects, once=once, max_bytes=max_bytes, blob=blob)
        replayable = content is None or isinstance(content, bytes)
        fresh_for: int | None = None  # the credential whose token was fetched for this very request
        # Other threads may move the chain on meanwhile: every decision uses the index the header was built for.
        for _ in range(4 * len(self.auth.credentials) + 4):
            index, authorization = self.auth.header(scopes)
            sent_headers = dict(headers or {})
            if authorization:
                sent_headers["Authorization"] = authorization
            response = self.send(method, url, headers=sent_headers, params=params, content=content,
                                 stream=stream, follow_redirects=follow_redirects, once=once, max_bytes=max_bytes,
                                 blob=blob, started=started)
            if response.status_code not in (401, 403):
                return response
            response = _drain(response)
            if not self._same_origin(str(response.url)):
                # A redirect target (ghcr.io's blob CDN) refused: its signed URL expired, say. Not this
                # credential's fault, and its challenge names a realm the registry did not choose.
                raise RedirectTargetRefused.from_response(response, detail="redirect target refused; retry "
                                                          "through the registry")
            challenge = response.headers.get("www-authenticate")
            if response.status_code == 401 and challenge and fresh_for != index:
                if not replayable:
                    raise RegistryError.from_response(response, detail="authorization expired mid-upload")
                # Steps 2-3: answer the challenge, then send again (step 4).
                try:
                    self.auth.authenticate(challenge, scopes, functools.partial(self.send, started=started), index,
                                           self.repository.base_url)
                    fresh_for = index
                    continue
                except TokenDenied:
                    pass
            # Denied for this credential: step down the chain, or give up naming what was tried.
            advanced = self.auth.advance(index) if replayable else None
            if advanced is None:
                raise AccessDenied(method, url, response.status_code, str(self.repository),
                                   self.auth.tried(), self.hint, RegistryError.from_response(response).errors)
            if advanced == "moved":
                log.info("%s credential %r denied for %s; trying %r", self.role, self.auth.credentials[index].kind,
                         self.repository, self.auth.credentials[index + 1].kind)
        raise AccessDenied(method, url, None, str(self.repository), self.auth.tried(), self.hint)

    def _same_origin(self, url: str) -> bool:
        """Tell whether a URL is on this registry (scheme, host and port)."""
        target, own = httpx.URL(url), httpx.URL(self.repository.base_url)
        return (target.scheme, target.netloc) == (own.scheme, own.netloc)

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


def _first_line(exc: Exception) -> str:
    """Return an httpx error's message without URLs' query strings, on one line."""
    return re.sub(r"\?\S*", "", " ".join(str(exc).split()))[:200]


def _drain(response: httpx.Response) -> httpx.Response:
    """Read at most Limits.max_error_body of an (error) body and close; return the read response."""
    if not response.is_stream_consumed and not response.is_closed:
        return read_capped(response, Limits.max_error_body, "error answer", truncate=True)
    response.close()
    return response


def raise_for(response: httpx.Response, detail: str = "") -> RegistryError:
    """Read (a capped part of) a failed, possibly streamed, response and build its RegistryError."""
    return RegistryError.from_response(_drain(response), detail)

"""How long a registry may make us wait and how much it may make us read (docs/operators.md, "Limits").

Metadata requests (manifests, tags, HEADs, uploads' start, tokens) get a total deadline per attempt,
headers and body together, and all attempts of one request share a budget. Blobs get no fixed deadline:
they must keep up a minimum throughput instead. Bodies that are not blobs are read through a byte
counter: a 2xx answer over its cap is refused, an error body is cut at its cap (it only feeds a message).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields

import httpx

from chalicelib.registry.errors import DeadlineExceeded, RefusedValue, ResponseTooLarge

KiB, MiB = 1024, 1024 * 1024
DEADLINE_KEY = "ghcr2ecr.deadline"  # request extension: the monotonic time its attempt must end by
SETTINGS = {  # environment variable -> Limits field (seconds, or bytes per second)
    "GHCR2ECR_REQUEST_DEADLINE": "request_deadline",
    "GHCR2ECR_REQUEST_GIVE_UP": "give_up_after",
    "GHCR2ECR_BLOB_MIN_RATE": "blob_min_rate",
    "GHCR2ECR_BLOB_RATE_WINDOW": "blob_rate_window",
}


@dataclass(frozen=True)
class Limits:
    """Time and size bounds for one registry end."""

    request_deadline: float = 30.0  # one attempt of a metadata request, headers and body
    give_up_after: float = 90.0  # every attempt of one request, the waits between them included
    connect_timeout: float = 10.0
    read_timeout: float = 60.0  # the longest silence inside a blob stream
    blob_min_rate: float = 16 * KiB  # bytes per second a blob stream must keep up, averaged over a window
    blob_rate_window: float = 30.0
    max_error_body: int = 64 * KiB
    max_token_body: int = 1 * MiB
    max_tags_page: int = 4 * MiB
    max_body: int = 64 * KiB  # any other 2xx answer that is not a manifest or a blob

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        """Read the settings that are set (positive numbers); raise ValueError naming a malformed one."""
        values: dict[str, float] = {}
        for name, attribute in SETTINGS.items():
            text = env.get(name, "").strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                value = -1.0
            if not 0 < value < 86400 * 30:
                raise ValueError(f"{name} must be a positive number, not {text[:40]!r}")
            values[attribute] = value
        limits = cls(**values)  # type: ignore[arg-type]
        if limits.request_deadline > limits.give_up_after:
            raise ValueError("GHCR2ECR_REQUEST_DEADLINE must not exceed GHCR2ECR_REQUEST_GIVE_UP")
        return limits

    def describe(self) -> dict[str, float]:
        """Return every limit by name (for docs and tests)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def attempt_timeout(limits: Limits, left: float, blob: bool) -> tuple[httpx.Timeout, float | None]:
    """Return httpx's timeouts for one attempt with `left` seconds of budget, and its deadline (None: blob)."""
    span = left if blob else min(limits.request_deadline, left)
    read = min(limits.read_timeout, span)
    timeout = httpx.Timeout(connect=min(limits.connect_timeout, span), read=read, write=limits.read_timeout,
                            pool=min(limits.connect_timeout, span))
    return timeout, None if blob else time.monotonic() + span


def check_deadline(response: httpx.Response, what: str) -> None:
    """Raise DeadlineExceeded when the attempt that produced `response` is past its deadline."""
    deadline = response.request.extensions.get(DEADLINE_KEY)
    if deadline is not None and time.monotonic() > deadline:
        raise DeadlineExceeded(response.request.method, response.request.url, None, detail=f"{what} not complete "
                               "within its deadline (GHCR2ECR_REQUEST_DEADLINE)")


def _decoded(response: httpx.Response, limit: int, what: str) -> Iterator[bytes]:
    """Yield the body decoded in pieces of at most 64 KiB, so a compression bomb never expands in memory.

    (httpx would inflate each network read whole: 64 KiB of gzip'd zeros is 64 MiB.) We ask for
    `identity`; gzip and deflate are still decoded when a registry sends them anyway, others refused.
    """
    if response.is_stream_consumed:  # built with its content in memory already (httpx.MockTransport)
        yield response.content
        return
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        yield from response.iter_raw()
        return
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise RefusedValue(response.request.method, response.request.url,
                           f"{what} is in an encoding this client did not ask for ({encoding[:40]!r})")
    decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    try:
        for raw in response.iter_raw():
            while raw:
                yield decoder.decompress(raw, 64 * KiB)
                raw = decoder.unconsumed_tail
        yield decoder.flush()
    except zlib.error:
        raise RefusedValue(response.request.method, response.request.url, f"{what} does not decode ({encoding})") \
            from None


def has_body(response: httpx.Response) -> bool:
    """Tell whether an answer carries a body at all (RFC 9110 §6.4.1: not to HEAD, not 1xx, 204 or 304).

    A bodiless answer's Content-Length describes the resource (a blob HEAD's is the blob's size), not
    bytes to read, so no body cap applies to it.
    """
    status = response.status_code
    return response.request.method != "HEAD" and status >= 200 and status not in (204, 304)


def declared_length(response: httpx.Response, cap: int) -> int | None:
    """Read Content-Length as a resource size: a plain decimal no larger than `cap`, else None (unknown)."""
    text = response.headers.get("content-length", "").strip()
    if not text.isascii() or not text.isdigit() or len(text) > 20 or int(text) > cap:
        return None
    return int(text)


def read_capped(response: httpx.Response, limit: int, what: str, *, truncate: bool = False) -> httpx.Response:
    """Read a streamed body through a byte counter and the attempt's deadline; return a read Response.

    Over `limit`: refused (ResponseTooLarge), or cut there when `truncate` (error bodies). The stream is
    closed either way; the returned Response holds the decoded bytes.
    """
    try:
        declared = response.headers.get("content-length", "")
        # Refused early only when the header promises a body: a HEAD's (or 204's) describes the resource.
        if not truncate and has_body(response) and declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(response.request.method, response.request.url, what, limit)
        data = bytearray()
        for chunk in _decoded(response, limit, what):
            data += chunk
            if len(data) > limit:
                if not truncate:
                    raise ResponseTooLarge(response.request.method, response.request.url, what, limit)
                del data[limit:]
                break
            check_deadline(response, what)
    finally:
        response.close()
    kept = [(k, v) for k, v in response.headers.multi_items()  # the body is decoded now
            if k.lower() not in ("content-encoding", "transfer-encoding")]
    return httpx.Response(response.status_code, headers=kept, content=bytes(data), request=response.request,
                          history=response.history)

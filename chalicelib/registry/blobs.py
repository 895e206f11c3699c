"""Blobs: HEAD (exists?), cross-repository mount, and a streamed, verified copy between registries.

Copy (distribution spec "Pushing blobs", monolithic upload):
1. POST /v2/<dest>/blobs/uploads/ (with `?mount=<digest>&from=<repo>` when the destination registry may
   hold the blob in another repository): 201 = mounted, done; 202 + Location = upload it ourselves.
2. GET /v2/<source>/blobs/<digest>, following redirects (ghcr.io answers 307 to a CDN; httpx drops the
   Authorization header on a cross-origin redirect).
3. PUT <Location>&digest=<digest> with the GET body streamed straight through, hashing every chunk.
   The last piece is held back until the hash is checked, so a corrupted blob is never completed; the
   registry also checks `?digest=` itself. Memory stays at a few 1 MiB pieces whatever the blob's size.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Literal
from urllib.parse import urlencode, urljoin

import httpx

from chalicelib.registry.errors import (AccessDenied, DigestMismatch, RedirectTargetRefused, RefusedValue,
                                       RegistryError)
from chalicelib.registry import uploads
from chalicelib.registry.limits import Limits
from chalicelib.registry.manifests import Descriptor, checked_path
from chalicelib.registry.reference import check_digest
from chalicelib.registry.transport import Transport, raise_for

log = logging.getLogger(__name__)
Outcome = Literal["copied", "mounted", "skipped"]
MAX_MOUNT_TRIES = 4  # repositories tried for a cross-repository mount before uploading
UPLOAD_PIECE = 1 << 20  # bytes handed to the upload at a time (see _verified)


def blob_path(transport: Transport, digest: str, method: str) -> str:
    """Build `/v2/<name>/blobs/<digest>`, refusing anything but a sha256 digest."""
    return checked_path(transport, "blobs", digest, check_digest, method)


def blob_exists(transport: Transport, digest: str, *, actions: str = "pull") -> bool:
    """HEAD a blob: True when the registry has it, False on 404."""
    name = transport.repository.name
    response = transport.request("HEAD", blob_path(transport, digest, "HEAD"), scopes=[(name, actions)])
    if response.status_code == 200:
        return True
    if response.status_code == 404:
        return False
    raise raise_for(response, detail=f"checking blob {transport.repository}@{digest}")


def start_upload(transport: Transport, digest: str, mount_from: str | None) -> str | None:
    """Open an upload session (step 1); None when the blob was mounted from `mount_from`."""
    name = transport.repository.name
    path = f"/v2/{name}/blobs/uploads/"
    scopes = [(name, "pull,push")]
    if mount_from:
        path += "?" + urlencode({"mount": digest, "from": mount_from})
        scopes.append((mount_from, "pull"))
    response = transport.request("POST", path, scopes=scopes, headers={"Content-Length": "0"})
    response.close()
    if response.status_code == 201 and mount_from:
        return None
    if response.status_code != 202 or "location" not in response.headers:
        raise raise_for(response, detail=f"starting blob upload to {transport.repository}")
    # A relative Location resolves against the request's URL (RFC 3986 §5; distribution spec allows both).
    return urljoin(str(response.request.url), response.headers["location"])


def _with_digest(location: str, digest: str) -> str:
    """Append `digest=` to an upload Location that may already carry a query (`_state=...`)."""
    return location + ("&" if "?" in location else "?") + urlencode({"digest": digest})


class SourceStreamLost(Exception):
    """The source connection broke while its blob was being streamed into the destination."""


def _source_chunks(chunks: Iterator[bytes], what: str, limits: Limits) -> Iterator[bytes]:
    """Pass the source's chunks on, enforcing the minimum throughput; a read failure becomes SourceStreamLost.

    The rule: over each window of Limits.blob_rate_window seconds, at least Limits.blob_min_rate bytes per
    second on average (a source trickling bytes keeps every read under the read timeout, forever).
    """
    started, moved = time.monotonic(), 0
    try:
        for chunk in chunks:
            moved += len(chunk)
            elapsed = time.monotonic() - started
            if elapsed >= limits.blob_rate_window:
                if moved < limits.blob_min_rate * elapsed:
                    raise SourceStreamLost(f"{what} came at {moved / elapsed:.0f} bytes/s over {elapsed:.0f}s, under "
                                           f"the minimum {limits.blob_min_rate:.0f} (GHCR2ECR_BLOB_MIN_RATE); "
                                           "abandoned")
                started, moved = time.monotonic(), 0
            yield chunk
    except httpx.HTTPError as exc:  # a dropped connection, or a body that does not decode
        raise SourceStreamLost(f"connection lost reading {what} from the source: {type(exc).__name__}") from None


def _verified(chunks: Iterator[bytes], blob: Descriptor, what: str, on_bytes: Callable[[int], None],
              limits: Limits = Limits()) -> Iterator[bytes]:
    """Pass the bytes on in pieces of UPLOAD_PIECE, hashing them; hold the last back until size and digest check out.

    Reads come in 16-64 KiB (a TLS record, httpcore's read size); every piece handed to the upload costs a pass
    through httpx, httpcore and h11, so they are joined first (bench/: a 200 MiB PUT costs 0.48 s of CPU in
    16 KiB pieces, 0.06 s in 1 MiB ones). Memory: about three pieces per blob copy (held, gathering, joined).
    """
    hasher = hashlib.sha256()
    size = 0
    gathered: list[bytes] = []
    gathered_size = 0
    pending: bytes | None = None
    for chunk in _source_chunks(chunks, what, limits):
        if not chunk:
            continue
        hasher.update(chunk)
        size += len(chunk)
        if size > blob.size:
            raise DigestMismatch(what, blob.digest, f"more than the declared {blob.size} bytes")
        gathered.append(chunk)
        gathered_size += len(chunk)
        if gathered_size >= UPLOAD_PIECE:
            if pending is not None:
                yield pending
                on_bytes(len(pending))
            pending, gathered, gathered_size = b"".join(gathered), [], 0
    actual = "sha256:" + hasher.hexdigest()
    if actual != blob.digest:
        raise DigestMismatch(what, blob.digest, actual)
    if size != blob.size:
        raise DigestMismatch(what, blob.digest, f"{size} bytes, not the declared {blob.size}")
    for piece in (pending, b"".join(gathered)):
        if piece:
            yield piece
            on_bytes(len(piece))


def open_upload(transport: Transport, digest: str, mount_from: Sequence[str]) -> str | None:
    """Try a mount from each repository in turn (at most MAX_MOUNT_TRIES); None when one mounted, else a Location.

    A registry that cannot mount answers 202 with an upload session: each but the last is cancelled.
    """
    candidates: list[str | None] = [*dict.fromkeys(mount_from)]
    candidates = candidates[:MAX_MOUNT_TRIES] or [None]  # no repository to mount from: a plain upload
    for index, repository in enumerate(candidates):
        location = start_upload(transport, digest, repository)
        if location is None or index == len(candidates) - 1:
            return location
        uploads.cancel(transport, location)
    raise AssertionError("unreachable")


def copy_blob(source: Transport, dest: Transport, blob: Descriptor, *, mount_from: str | Sequence[str] | None = None,
              on_bytes: Callable[[int], None] = lambda n: None) -> Outcome:
    """Copy one blob the destination lacks: mount it, or stream it from source to destination, verified."""
    candidates = [mount_from] if isinstance(mount_from, str) else list(mount_from or ())
    location = open_upload(dest, blob.digest, candidates)
    if location is None:
        return "mounted"
    what = f"blob {source.repository}@{blob.digest}"
    name = source.repository.name
    with uploads.tracked(dest, location):  # cancelled when this raises, or when the process is stopped
        with _source_stream(source, name, blob.digest) as response:
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}
            body = _verified(response.iter_bytes(), blob, what, on_bytes, source.limits)
            upload = dest.request("PUT", _with_digest(location, blob.digest), scopes=[(dest.repository.name,
                                  "pull,push")], headers=headers, content=body, blob=True)
        if upload.status_code not in (201, 204):
            raise raise_for(upload, detail=f"completing upload of {blob.digest} to {dest.repository}")
        upload.close()
        return "copied"


class _source_stream:
    """Context manager: a streamed GET of one source blob, following redirects, checked for 200."""

    def __init__(self, transport: Transport, name: str, digest: str) -> None:
        self.transport, self.name, self.digest = transport, name, digest
        self.response: httpx.Response | None = None

    def __enter__(self) -> httpx.Response:
        """Open the stream or raise with the registry's answer (404 included: a manifest names it)."""
        response = self.transport.request("GET", blob_path(self.transport, self.digest, "GET"),
                                          scopes=[(self.name, "pull")], stream=True, follow_redirects=True,
                                          blob=True)
        if response.status_code != 200:
            raise raise_for(response, detail=f"reading blob {self.transport.repository}@{self.digest}")
        self.response = response
        return response

    def __exit__(self, *exc: object) -> None:
        """Close the stream."""
        if self.response is not None:
            self.response.close()


def copy_blob_with_retries(source: Transport, dest: Transport, blob: Descriptor, *,
                           mount_from: Sequence[str] = (), attempts: int = 3,
                           on_bytes: Callable[[int], None] = lambda n: None,
                           sleep: Callable[[float], None] | None = None) -> Outcome:
    """Copy one blob, retrying the whole transfer on a dropped connection or transient answer.

    A digest mismatch is retried too (the source may have sent corrupt bytes once), but never stored.
    """
    sleep = sleep or source.sleep
    for attempt in range(1, attempts + 1):
        try:
            return copy_blob(source, dest, blob, mount_from=mount_from, on_bytes=on_bytes)
        except (RegistryError, DigestMismatch, SourceStreamLost, httpx.TransportError) as exc:
            permanent = isinstance(exc, RefusedValue) or (
                isinstance(exc, RegistryError) and exc.status is not None and exc.status < 500
                and exc.status not in (401, 408, 429) and not isinstance(exc, RedirectTargetRefused))
            if permanent or attempt >= attempts or isinstance(exc, AccessDenied):
                if isinstance(exc, (httpx.TransportError, SourceStreamLost)):
                    raise RegistryError("GET", f"{source.repository}@{blob.digest}", None,
                                        detail=f"connection lost copying blob after {attempt} attempt(s): "
                                        f"{exc if isinstance(exc, SourceStreamLost) else type(exc).__name__}") from None
                raise
            wait = source.retry.delay(attempt)
            log.warning("copying %s failed (%s); retry %d in %.1fs", blob.digest, exc, attempt, wait)
            sleep(wait)
    raise AssertionError("unreachable")

"""Blobs: verified streaming, mount attempts, monolithic upload to the Location the registry gives."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from chalicelib.registry.auth import ANONYMOUS, Authenticator, StaticCredential
from chalicelib.registry.blobs import SourceStreamLost, _verified, copy_blob, copy_blob_with_retries
from chalicelib.registry.errors import DigestMismatch, RedirectTargetRefused, RegistryError
from chalicelib.registry.manifests import Descriptor
from chalicelib.registry.reference import Repository
from chalicelib.registry.transport import RetryPolicy, Transport

DATA = b"layer-bytes" * 1000
BLOB = Descriptor(digest="sha256:" + hashlib.sha256(DATA).hexdigest(), size=len(DATA))


def transport(repo: Repository, handler: object) -> Transport:
    """A transport over a MockTransport handler, never sleeping."""
    client = httpx.Client(transport=httpx.MockTransport(handler))  # type: ignore[arg-type]
    return Transport(repo, Authenticator([ANONYMOUS]), role="x", hint="-", client=client,
                     retry=RetryPolicy(attempts=2), sleep=lambda s: None)


def test_verified_passes_good_bytes_through_in_order() -> None:
    chunks = [DATA[:100], DATA[100:5000], DATA[5000:]]
    assert b"".join(_verified(iter(chunks), BLOB, "blob", lambda n: None)) == DATA


def test_a_corrupt_blob_fails_before_its_last_chunk_is_sent() -> None:
    corrupt = bytearray(DATA)
    corrupt[-1] ^= 0xFF
    sent: list[bytes] = []
    with pytest.raises(DigestMismatch):
        for chunk in _verified(iter([bytes(corrupt[:100]), bytes(corrupt[100:])]), BLOB, "blob", lambda n: None):
            sent.append(chunk)
    assert sum(map(len, sent)) < len(DATA)


BIG = bytes(range(256)) * (14 * 1024)  # 3.5 MiB
BIG_BLOB = Descriptor(digest="sha256:" + hashlib.sha256(BIG).hexdigest(), size=len(BIG))


def _records(data: bytes, size: int = 16 * 1024) -> Iterator[bytes]:
    """Cut data the way a TLS connection delivers it: 16 KiB records."""
    return (data[i:i + size] for i in range(0, len(data), size))


def test_small_reads_reach_the_upload_joined_into_pieces_of_about_one_mib() -> None:
    pieces = list(_verified(_records(BIG), BIG_BLOB, "blob", lambda n: None))
    assert b"".join(pieces) == BIG
    assert [len(p) for p in pieces] == [1 << 20, 1 << 20, 1 << 20, len(BIG) - 3 * (1 << 20)]


def test_a_corrupt_large_blob_fails_before_its_last_piece_is_sent() -> None:
    corrupt = bytearray(BIG)
    corrupt[-1] ^= 0xFF
    sent: list[bytes] = []
    with pytest.raises(DigestMismatch):
        for piece in _verified(_records(bytes(corrupt)), BIG_BLOB, "blob", lambda n: None):
            sent.append(piece)
    assert sum(map(len, sent)) == 2 * (1 << 20)  # the third full piece and the tail are held back


def test_fewer_bytes_than_declared_are_refused_even_when_the_digest_matches() -> None:
    declared_larger = Descriptor(digest=BLOB.digest, size=BLOB.size + 1)
    with pytest.raises(DigestMismatch, match="not the declared"):
        list(_verified(iter([DATA]), declared_larger, "blob", lambda n: None))


def test_more_bytes_than_declared_are_refused_at_once() -> None:
    with pytest.raises(DigestMismatch, match="more than the declared"):
        list(_verified(iter([DATA, b"x"]), BLOB, "blob", lambda n: None))


class FakeDest:
    """A destination registry recording upload requests; mount answers `mount_status`."""

    def __init__(self, mount_status: int = 202) -> None:
        self.mount_status = mount_status
        self.requests: list[tuple[str, str]] = []
        self.stored: bytes | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, str(request.url)))
        if request.method == "POST":
            if "mount" in request.url.params and self.mount_status == 201:
                return httpx.Response(201)
            return httpx.Response(202, headers={"Location": "/v2/dst/blobs/uploads/u1?_state=abc"})
        if request.method == "PUT":
            self.stored = request.read()
            ok = hashlib.sha256(self.stored).hexdigest() == request.url.params["digest"].split(":")[1]
            return httpx.Response(201 if ok else 400)
        return httpx.Response(204)


SRC = Repository(host="src.test", name="src")
DST = Repository(host="dst.test", name="dst")


def test_a_blob_streams_from_source_into_the_upload_location_with_the_digest() -> None:
    dest = FakeDest()
    outcome = copy_blob(transport(SRC, lambda r: httpx.Response(200, content=DATA)), transport(DST, dest), BLOB)
    assert outcome == "copied"
    assert dest.stored == DATA
    method, url = dest.requests[-1]
    assert method == "PUT" and url.startswith("https://dst.test/v2/dst/blobs/uploads/u1?_state=abc&digest=sha256%3A")


def test_a_successful_mount_moves_no_bytes() -> None:
    dest = FakeDest(mount_status=201)
    source_hits: list[str] = []

    def source(request: httpx.Request) -> httpx.Response:
        source_hits.append("x")
        return httpx.Response(200)

    outcome = copy_blob(transport(SRC, source), transport(DST, dest), BLOB, mount_from="other/repo")
    assert outcome == "mounted" and source_hits == []
    assert "mount=sha256%3A" in dest.requests[0][1] and "from=other%2Frepo" in dest.requests[0][1]


def test_a_refused_mount_falls_back_to_an_upload_in_the_session_it_opened() -> None:
    dest = FakeDest(mount_status=202)
    outcome = copy_blob(transport(SRC, lambda r: httpx.Response(200, content=DATA)), transport(DST, dest), BLOB,
                        mount_from="other/repo")
    assert outcome == "copied" and [m for m, _ in dest.requests] == ["POST", "PUT"]


class MountsOnlyFrom(FakeDest):
    """A destination that can mount only from one repository; the other mounts open an upload session."""

    def __init__(self, repository: str) -> None:
        super().__init__()
        self.repository = repository

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.params.get("from") == self.repository:
            self.requests.append((request.method, str(request.url)))
            return httpx.Response(201)
        return super().__call__(request)


def test_every_mount_candidate_is_tried_in_turn_and_each_refused_session_cancelled() -> None:
    dest = MountsOnlyFrom("c/three")
    outcome = copy_blob_with_retries(transport(SRC, lambda r: httpx.Response(200, content=DATA)),
                                     transport(DST, dest), BLOB, mount_from=["a/one", "b/two", "a/one", "c/three"])
    assert outcome == "mounted"
    assert [(m, httpx.URL(u).params.get("from")) for m, u in dest.requests] == [
        ("POST", "a/one"), ("DELETE", None), ("POST", "b/two"), ("DELETE", None), ("POST", "c/three")]


def test_corrupted_source_bytes_are_retried_and_never_completed() -> None:
    dest = FakeDest()
    bad = DATA[:-1] + b"?"
    with pytest.raises(DigestMismatch):
        copy_blob_with_retries(transport(SRC, lambda r: httpx.Response(200, content=bad)), transport(DST, dest),
                               BLOB, attempts=2, sleep=lambda s: None)
    assert dest.stored is None or hashlib.sha256(dest.stored).hexdigest() != BLOB.digest[7:]
    assert [m for m, _ in dest.requests].count("DELETE") == 2  # each abandoned session is cancelled


def test_a_missing_source_blob_is_not_retried() -> None:
    hits: list[int] = []

    def source(request: httpx.Request) -> httpx.Response:
        hits.append(1)
        return httpx.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]})

    with pytest.raises(RegistryError, match="BLOB_UNKNOWN"):
        copy_blob_with_retries(transport(SRC, source), transport(DST, FakeDest()), BLOB, attempts=3,
                               sleep=lambda s: None)
    assert len(hits) == 1


def test_a_redirected_blob_download_is_followed_without_the_registry_credential() -> None:
    seen: list[tuple[str, str | None]] = []

    def source(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers.get("authorization")))
        if request.url.host == "src.test":
            if "authorization" not in request.headers:
                return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="src"'})
            return httpx.Response(307, headers={"Location": "https://cdn.test/blob?sig=abc"})
        return httpx.Response(200, content=DATA)

    client = httpx.Client(transport=httpx.MockTransport(source))
    src = Transport(SRC, Authenticator([StaticCredential("fallback token", "u", "SECRET")]), role="source",
                    hint="-", client=client, retry=RetryPolicy(attempts=1), sleep=lambda s: None)
    dest = FakeDest()
    assert copy_blob(src, transport(DST, dest), BLOB) == "copied"
    assert dest.stored == DATA
    assert seen[-1] == ("cdn.test", None)  # httpx drops Authorization on a cross-origin redirect


def _redirecting_source(cdn_answers: list[httpx.Response], seen: list[str]) -> Transport:
    """A source whose blob GET redirects to a CDN answering `cdn_answers` in turn (then 200 with the data)."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.host}{request.url.path}")
        if request.url.host == "src.test":
            if request.url.path == "/token":
                return httpx.Response(200, json={"token": "tok"})
            if request.headers.get("authorization") != "Bearer tok":
                return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://src.test/token"'})
            return httpx.Response(307, headers={"Location": "https://cdn.test/blob?sig=abc"})
        return cdn_answers.pop(0) if cdn_answers else httpx.Response(200, content=DATA)

    client = httpx.Client(transport=httpx.MockTransport(handle))
    chain = [StaticCredential("installation token", "x", "SECRET1"), ANONYMOUS]
    return Transport(SRC, Authenticator(chain), role="source", hint="-", client=client,
                     retry=RetryPolicy(attempts=1), sleep=lambda s: None)


def test_an_expired_cdn_url_is_retried_without_touching_the_credential_chain() -> None:
    seen: list[str] = []
    src = _redirecting_source([httpx.Response(403, text="Request has expired")], seen)
    assert copy_blob_with_retries(src, transport(DST, FakeDest()), BLOB, attempts=2, sleep=lambda s: None) == "copied"
    assert src.auth.tried() == ["installation token"]
    assert seen.count("src.test/token") == 1


def test_a_cdn_challenge_starts_no_token_handshake_with_the_cdns_realm() -> None:
    seen: list[str] = []
    challenge = httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://cdn.test/token"'})
    src = _redirecting_source([challenge, challenge], seen)
    with pytest.raises(RedirectTargetRefused, match="cdn.test/blob: HTTP 401"):
        copy_blob_with_retries(src, transport(DST, FakeDest()), BLOB, attempts=2, sleep=lambda s: None)
    assert "cdn.test/token" not in seen and src.auth.tried() == ["installation token"]


def test_a_source_stream_that_fails_to_decode_is_a_lost_stream_and_retried() -> None:
    def broken() -> Iterator[bytes]:
        yield DATA[:10]
        raise httpx.DecodingError("Error -3 while decompressing data")

    with pytest.raises(SourceStreamLost, match="DecodingError"):
        list(_verified(broken(), BLOB, "blob", lambda n: None))

"""A bodiless answer's Content-Length describes the resource, not bytes to read: no body cap applies to it.

A registry answers a blob HEAD with `200` and `Content-Length: <blob size>` (docker-registry, ECR and GHCR
all do), so a sync that finds a blob over 64 KiB in the destination, which is every release after the first,
must not read that header as an oversized body. A GET whose header promises a body over the cap is still
refused before reading.
"""

from __future__ import annotations

import httpx
import pytest

from chalicelib.registry.auth import ANONYMOUS, Authenticator
from chalicelib.registry.blobs import blob_exists
from chalicelib.registry.errors import ResponseTooLarge
from chalicelib.registry.manifests import MAX_MANIFEST_BYTES, head_manifest
from chalicelib.registry.reference import Repository
from chalicelib.registry.transport import Transport

REPO = Repository(host="registry.test", name="octo/app")
DIGEST = "sha256:" + "ab" * 32
MiB = 1024 * 1024


def transport(answer: httpx.Response) -> Transport:
    """A transport whose registry gives this answer to every request."""
    client = httpx.Client(transport=httpx.MockTransport(lambda request: answer))
    return Transport(REPO, Authenticator([ANONYMOUS]), role="destination", hint="-", client=client)


@pytest.mark.parametrize("size", [64 * 1024 + 1, 5 * MiB, 3 * 1024 ** 3])
def test_a_blob_head_declaring_the_blob_size_says_the_blob_is_there(size: int) -> None:
    head = httpx.Response(200, headers={"Content-Length": str(size), "Docker-Content-Digest": DIGEST})
    assert blob_exists(transport(head), DIGEST) is True


def test_a_manifest_head_gives_its_size_from_the_header() -> None:
    head = httpx.Response(200, headers={"Content-Length": "1234", "Docker-Content-Digest": DIGEST,
                                        "Content-Type": "application/vnd.oci.image.index.v1+json"})
    found = head_manifest(transport(head), "v1")
    assert found is not None and (found.digest, found.size) == (DIGEST, 1234)


@pytest.mark.parametrize("declared", [str(MAX_MANIFEST_BYTES + 1), "9" * 30])
def test_a_manifest_head_declaring_an_impossible_size_is_not_trusted_for_it(declared: str) -> None:
    head = httpx.Response(200, headers={"Content-Length": declared, "Docker-Content-Digest": DIGEST})
    found = head_manifest(transport(head), "v1")
    assert found is not None and (found.digest, found.size) == (DIGEST, 0)


def test_a_204_declaring_a_length_is_not_read_as_a_body() -> None:
    answer = httpx.Response(204, headers={"Content-Length": str(5 * MiB)})
    assert transport(answer).request("DELETE", f"/v2/{REPO.name}/blobs/uploads/x", scopes=[]).status_code == 204


def test_a_get_whose_header_promises_a_body_over_the_cap_is_still_refused_before_reading() -> None:
    answer = httpx.Response(200, headers={"Content-Length": str(5 * MiB)}, content=b"")
    with pytest.raises(ResponseTooLarge):
        transport(answer).request("GET", f"/v2/{REPO.name}/tags/list", scopes=[])

"""Manifests: Accept headers, exact bytes, media types, schema 1 refusal, tags/list pagination."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from chalicelib.registry.auth import ANONYMOUS, Authenticator
from chalicelib.registry.errors import DigestMismatch, RegistryError, UnsupportedManifest
from chalicelib.registry.manifests import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    get_manifest,
    list_tags,
    put_manifest,
)
from chalicelib.registry.reference import Repository
from chalicelib.registry.transport import RetryPolicy, Transport

REPO = Repository(host="registry.test", name="octo/app")
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def digest_of(raw: bytes) -> str:
    """sha256 digest of bytes."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def serve(handler: object) -> Transport:
    """A transport in front of a MockTransport handler."""
    client = httpx.Client(transport=httpx.MockTransport(handler))  # type: ignore[arg-type]
    return Transport(REPO, Authenticator([ANONYMOUS]), role="source", hint="-", client=client,
                     retry=RetryPolicy(attempts=1), sleep=lambda s: None)


# Deliberately not canonical JSON (odd spacing): the digest is of these exact bytes.
INDEX = (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",\n "manifests": ['
         b'{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "' + DIGEST_A.encode() +
         b'", "size": 10}]}')


def test_a_manifest_is_read_with_every_supported_accept_type_and_kept_byte_exact() -> None:
    seen: dict[str, str] = {}

    def handle(request: httpx.Request) -> httpx.Response:
        seen["accept"] = request.headers["accept"]
        return httpx.Response(200, content=INDEX, headers={"Content-Type": OCI_INDEX,
                                                            "Docker-Content-Digest": digest_of(INDEX)})

    manifest = get_manifest(serve(handle), "v1")
    assert manifest is not None
    assert manifest.raw == INDEX and manifest.digest == digest_of(INDEX)
    assert manifest.media_type == OCI_INDEX and manifest.is_index
    assert [c.digest for c in manifest.children()] == [DIGEST_A]
    for media_type in (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST):
        assert media_type in seen["accept"]


def test_an_unknown_manifest_is_none() -> None:
    assert get_manifest(serve(lambda r: httpx.Response(404, json={"errors": [
        {"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})), "v9") is None


def test_bytes_that_do_not_hash_to_the_requested_digest_are_refused() -> None:
    with pytest.raises(DigestMismatch, match="expected " + DIGEST_B):
        get_manifest(serve(lambda r: httpx.Response(200, content=INDEX, headers={"Content-Type": OCI_INDEX})),
                     DIGEST_B)


@pytest.mark.parametrize("content_type", [
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/json",
])
def test_docker_schema_1_is_refused_with_a_clear_message(content_type: str) -> None:
    raw = json.dumps({"schemaVersion": 1, "name": "octo/app", "tag": "old", "fsLayers": []}).encode()
    with pytest.raises(UnsupportedManifest, match="schema 1 manifests cannot be copied digest-exact"):
        get_manifest(serve(lambda r: httpx.Response(200, content=raw, headers={"Content-Type": content_type})),
                     "old")


def test_an_oci_manifest_without_media_type_field_or_header_is_recognised() -> None:
    raw = json.dumps({"schemaVersion": 2, "config": {"digest": DIGEST_A, "size": 2},
                      "layers": [{"digest": DIGEST_B, "size": 3}]}).encode()
    manifest = get_manifest(serve(lambda r: httpx.Response(200, content=raw)), "v1")
    assert manifest is not None and manifest.media_type == OCI_MANIFEST
    assert [b.digest for b in manifest.blobs()] == [DIGEST_A, DIGEST_B]


def test_an_artifact_with_a_subject_keeps_its_blobs_and_bytes() -> None:
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
                      "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": DIGEST_A, "size": 2},
                      "layers": [{"mediaType": "application/spdx+json", "digest": DIGEST_B, "size": 5}],
                      "subject": {"mediaType": OCI_MANIFEST, "digest": DIGEST_A, "size": 9}}).encode()
    manifest = get_manifest(serve(lambda r: httpx.Response(200, content=raw,
                                                           headers={"Content-Type": OCI_MANIFEST})), "sbom")
    assert manifest is not None and manifest.raw == raw
    assert [b.digest for b in manifest.blobs()] == [DIGEST_A, DIGEST_B]


def test_a_push_sends_the_original_bytes_and_media_type() -> None:
    received: dict[str, object] = {}

    def handle(request: httpx.Request) -> httpx.Response:
        received.update(method=request.method, path=request.url.path, body=request.content,
                        type=request.headers["content-type"])
        return httpx.Response(201, headers={"Docker-Content-Digest": digest_of(INDEX)})

    manifest = Manifest(digest=digest_of(INDEX), media_type=OCI_INDEX, raw=INDEX)
    assert put_manifest(serve(handle), "v1", manifest) == manifest.digest
    assert received == {"method": "PUT", "path": "/v2/octo/app/manifests/v1", "body": INDEX, "type": OCI_INDEX}


def test_tags_are_listed_across_link_paginated_pages() -> None:
    pages = {
        None: (["a", "b"], '</v2/octo/app/tags/list?n=2&last=b>; rel="next"'),
        "b": (["c", "d"], '<https://registry.test/v2/octo/app/tags/list?n=2&last=d>; rel="next"'),
        "d": (["e"], None),
    }

    def handle(request: httpx.Request) -> httpx.Response:
        tags, link = pages[request.url.params.get("last")]
        return httpx.Response(200, json={"name": "octo/app", "tags": tags}, headers={"Link": link} if link else {})

    assert list_tags(serve(handle), page_size=2) == ["a", "b", "c", "d", "e"]


def test_tags_of_an_unknown_repository_are_none() -> None:
    assert list_tags(serve(lambda r: httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN"}]}))) is None


@pytest.mark.parametrize("document", [
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": DIGEST_A, "size": 2}, "layers": ["x"]},
    [{"schemaVersion": 2}],
    "a string",
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"size": 2}, "layers": []},
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": 7, "size": 2}, "layers": []},
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": DIGEST_A, "size": "2"}, "layers": []},
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": DIGEST_A, "size": True}, "layers": []},
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": DIGEST_A, "size": -1}, "layers": []},
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": DIGEST_A, "size": 2, "mediaType": 3}},
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": "sha256:x", "layers": []},
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": DIGEST_A, "size": 2}, "layers": {}},
    {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": {"digest": DIGEST_A}},
    {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [None]},
    {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"digest": "sha256:short", "size": 1}]},
])
def test_a_malformed_manifest_is_refused_naming_it(document: object) -> None:
    raw = json.dumps(document).encode()
    media_type = document.get("mediaType", OCI_MANIFEST) if isinstance(document, dict) else OCI_MANIFEST
    with pytest.raises(UnsupportedManifest, match="registry.test/octo/app:v1"):
        get_manifest(serve(lambda r: httpx.Response(200, content=raw, headers={"Content-Type": media_type})), "v1")


@pytest.mark.parametrize("body", [{"tags": "v1"}, {"tags": [1, "v2"]}, ["v1"]])
def test_a_malformed_tag_list_is_a_registry_error(body: object) -> None:
    with pytest.raises(RegistryError, match="tags/list"):
        list_tags(serve(lambda r: httpx.Response(200, json=body)))

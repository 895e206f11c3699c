"""Manifests: GET/HEAD by tag or digest with the right Accept, PUT of the exact original bytes, tags/list.

Supported: Docker v2 schema 2 and manifest list, OCI image manifest and index (1.0/1.1, including
artifact manifests with `subject`). Docker schema 1 is refused: it is signed per registry, cannot be
copied digest-exact, and GHCR/ECR deprecated it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from urllib.parse import urljoin
from dataclasses import dataclass, field
from typing import Any

import httpx

from chalicelib.registry.errors import (DigestMismatch, RefusedValue, RegistryError, ResponseTooLarge,
                                       UnsupportedManifest)
from chalicelib.registry.reference import (DIGEST_PATTERN, TAG_PATTERN, InvalidReference, check_reference, is_digest,
                                          shown)
from chalicelib.registry.limits import declared_length, read_capped
from chalicelib.registry.redact import redact
from chalicelib.registry.transport import Transport, raise_for

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")
INDEX_TYPES = frozenset({DOCKER_LIST, OCI_INDEX})
IMAGE_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # distribution and ECR refuse manifests over 4 MiB
MAX_TAG_PAGES = 10_000
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor: digest, size and media type (OCI image-spec descriptor.md)."""

    digest: str
    size: int
    media_type: str = ""


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry stored it: its digest, media type and exact bytes."""

    digest: str
    media_type: str
    raw: bytes = field(repr=False)

    @functools.cached_property
    def document(self) -> dict[str, Any]:
        """Return the parsed JSON object (UnsupportedManifest when it is not one)."""
        return _json_object(self.raw, f"manifest {self.digest}")

    @property
    def is_index(self) -> bool:
        """Tell whether this is an index / manifest list."""
        return self.media_type in INDEX_TYPES

    def children(self) -> list[Descriptor]:
        """Return the manifests an index references (none for an image)."""
        if not self.is_index:
            return []
        return _descriptors(self.document, "manifests", f"manifest {self.digest}")

    def blobs(self) -> list[Descriptor]:
        """Return the config and layers an image manifest references (none for an index)."""
        if self.is_index:
            return []
        where = f"manifest {self.digest}"
        document = self.document
        config = [_descriptor(document["config"], where, "config")] if "config" in document else []
        layers = _descriptors(document, "layers", where)
        # Layers with `urls` (Windows foreign layers) are fetched from those URLs, not the registry.
        foreign = {i for i, item in enumerate(document.get("layers") or []) if item.get("urls")}
        return config + [layer for i, layer in enumerate(layers) if i not in foreign]


def _json_object(raw: bytes, where: str) -> dict[str, Any]:
    """Parse manifest bytes that must hold one JSON object."""
    try:
        document = json.loads(raw)
    except ValueError:
        raise UnsupportedManifest(f"{where}: manifest is not JSON") from None
    if not isinstance(document, dict):
        raise UnsupportedManifest(f"{where}: manifest is JSON but not an object")
    return document


def _descriptors(document: dict[str, Any], key: str, where: str) -> list[Descriptor]:
    """Read the descriptor list `key` (`manifests`, `layers`); absent or null is empty."""
    items = document.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise UnsupportedManifest(f"{where}: {key!r} is not a list")
    return [_descriptor(item, where, f"{key}[{i}]") for i, item in enumerate(items)]


def _descriptor(item: Any, where: str, name: str) -> Descriptor:
    """Read one descriptor (OCI image-spec descriptor.md), refusing ill-typed fields and non-sha256 digests."""
    if not isinstance(item, dict):
        raise UnsupportedManifest(f"{where}: {name} is not a descriptor object")
    digest, size, media_type = item.get("digest"), item.get("size"), item.get("mediaType", "")
    if not isinstance(digest, str) or not DIGEST_PATTERN.fullmatch(digest):
        raise UnsupportedManifest(f"{where}: {name} digest {str(digest)[:80]!r} is not sha256:<64 hex>")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise UnsupportedManifest(f"{where}: {name} size {str(size)[:40]!r} is not a non-negative integer")
    if not isinstance(media_type, str):
        raise UnsupportedManifest(f"{where}: {name} mediaType is not a string")
    return Descriptor(digest=digest, size=size, media_type=media_type)


def sha256_digest(data: bytes) -> str:
    """Return `sha256:<hex>` of some bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _media_type(content_type: str, raw: bytes, where: str) -> str:
    """Decide a manifest's media type from Content-Type, falling back to its `mediaType` field."""
    media_type = content_type.split(";")[0].strip()
    document = _json_object(raw, where)
    if media_type in SCHEMA1 or document.get("schemaVersion") == 1:
        raise UnsupportedManifest(
            f"{where}: Docker schema 1 manifests cannot be copied digest-exact; rebuild and push the image "
            "with a current Docker/BuildKit (schema 2 or OCI)"
        )
    if media_type not in INDEX_TYPES | IMAGE_TYPES:
        field_type = document.get("mediaType")
        if field_type in INDEX_TYPES | IMAGE_TYPES:
            media_type = field_type
        elif "manifests" in document:
            media_type = OCI_INDEX  # an OCI index may omit mediaType (image-spec 1.0)
        elif "layers" in document or "config" in document:
            media_type = OCI_MANIFEST
        else:
            raise UnsupportedManifest(f"{where}: unsupported manifest media type {media_type!r}")
    return media_type


def checked_path(transport: Transport, kind: str, reference: str, check: Callable[[str], str], method: str) -> str:
    """Build `/v2/<name>/<kind>/<reference>` once `check` accepts the reference; refuse it otherwise."""
    try:
        check(reference)
    except InvalidReference as exc:
        raise RefusedValue(method, f"{transport.repository}", f"refusing {kind[:-1]} reference: {exc}") from None
    return f"/v2/{transport.repository.name}/{kind}/{reference}"


def manifest_path(transport: Transport, reference: str, method: str) -> str:
    """Build `/v2/<name>/manifests/<reference>`, refusing a reference that is not a tag or sha256 digest."""
    return checked_path(transport, "manifests", reference, check_reference, method)


def header_digest(response: httpx.Response, where: str) -> str | None:
    """Return the `Docker-Content-Digest` header when sent; one that is not sha256:<64 hex> is an error."""
    value = response.headers.get("docker-content-digest")
    if value is None:
        return None
    if not DIGEST_PATTERN.fullmatch(value):
        raise RefusedValue(response.request.method, response.request.url,
                           f"{where}: the registry's Docker-Content-Digest {shown(value)} is not sha256:<64 hex>")
    return value


def get_manifest(transport: Transport, reference: str, *, actions: str = "pull") -> Manifest | None:
    """GET a manifest by tag or digest; None when the registry does not have it (404)."""
    name = transport.repository.name
    where = f"{transport.repository}:{reference}" if not is_digest(reference) else f"{transport.repository}@{reference}"
    response = transport.request("GET", manifest_path(transport, reference, "GET"), scopes=[(name, actions)],
                                 headers={"Accept": ACCEPT}, stream=True)
    if response.status_code == 404:
        response.close()
        return None
    if response.status_code != 200:
        raise raise_for(response, detail=f"reading manifest {where}")
    try:  # through the byte counter and the attempt's deadline
        raw = read_capped(response, MAX_MANIFEST_BYTES, f"reading manifest {where}").content
    except ResponseTooLarge:
        raise UnsupportedManifest(f"{where}: manifest larger than {MAX_MANIFEST_BYTES} bytes") from None
    digest = sha256_digest(raw)
    # Verify: by digest, the bytes must hash to it; by tag, the registry's header must agree (when sent).
    expected = reference if is_digest(reference) else header_digest(response, f"manifest {where}") or digest
    if expected != digest:
        raise DigestMismatch(f"manifest {where}", expected, digest)
    manifest = Manifest(digest=digest, media_type=_media_type(response.headers.get("content-type", ""), raw, where),
                        raw=raw)
    try:  # refuse a malformed tree here, where the manifest can be named, not halfway through the copy
        manifest.children(), manifest.blobs()
    except UnsupportedManifest as exc:
        raise UnsupportedManifest(f"{where}: {exc}") from None
    return manifest


def head_manifest(transport: Transport, reference: str, *, actions: str = "pull") -> Descriptor | None:
    """HEAD a manifest by tag or digest; its descriptor, or None when absent (404)."""
    name = transport.repository.name
    response = transport.request("HEAD", manifest_path(transport, reference, "HEAD"), scopes=[(name, actions)],
                                 headers={"Accept": ACCEPT})
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise raise_for(response, detail=f"checking manifest {transport.repository}:{reference}")
    digest = header_digest(response, f"manifest {transport.repository}:{reference}") or ""
    if not digest and is_digest(reference):
        digest = reference
    # A HEAD's Content-Length is the manifest's size: trusted only as a plain number within the manifest cap.
    size = declared_length(response, MAX_MANIFEST_BYTES) or 0
    return Descriptor(digest=digest, size=size, media_type=response.headers.get("content-type", ""))


def put_manifest(transport: Transport, reference: str, manifest: Manifest) -> str:
    """PUT the exact original bytes under a tag or digest; return the digest the registry computed."""
    name = transport.repository.name
    response = transport.request("PUT", manifest_path(transport, reference, "PUT"), scopes=[(name, "pull,push")],
                                 headers={"Content-Type": manifest.media_type}, content=manifest.raw)
    if response.status_code not in (200, 201, 202):
        raise raise_for(response, detail=f"pushing manifest {transport.repository}:{reference}")
    stored = header_digest(response, f"manifest pushed to {transport.repository}") or manifest.digest
    if stored != manifest.digest:
        raise DigestMismatch(f"manifest pushed to {transport.repository}", manifest.digest, stored)
    return stored


def list_tags(transport: Transport, page_size: int = 1000) -> list[str] | None:
    """List every valid tag, following `Link: <...>; rel="next"` pages; None when the repository is unknown.

    A listed tag outside the tag grammar is skipped, with one warning on the transport for the listing.
    """
    name = transport.repository.name
    tags: list[str] = []
    for page in tag_pages(transport, f"/v2/{name}/tags/list?n={page_size}"):
        if page is None:
            return None
        tags.extend(page)
    return tags


def tag_pages(transport: Transport, path: str) -> Iterator[list[str] | None]:
    """Yield each page's valid tags from tags/list (distribution spec "Listing Tags", Link pagination).

    None for an unknown repository. A page that is not `{"tags": [strings]}`, a `Link` loop and more
    than MAX_TAG_PAGES pages are errors (never a silently truncated listing). Tags that do not match
    the tag grammar are dropped: they could change the structure of a request path.
    """
    name = transport.repository.name
    seen: set[str] = set()
    invalid: list[str] = []
    skipped = 0
    next_path: str | None = path
    try:
        while next_path:
            if next_path in seen or len(seen) >= MAX_TAG_PAGES:
                why = "loops" if next_path in seen else f"goes on past {MAX_TAG_PAGES} pages"
                raise RefusedValue("GET", f"{transport.repository}/tags/list",
                                   f"listing tags of {transport.repository}: the pagination {why}; listing incomplete")
            seen.add(next_path)
            response = transport.request("GET", next_path, scopes=[(name, "pull")],
                                         max_bytes=transport.limits.max_tags_page)
            if response.status_code == 404:
                yield None
                return
            if response.status_code != 200:
                raise raise_for(response, detail=f"listing tags of {transport.repository}")
            try:
                tags = response.json().get("tags") or []
            except (ValueError, AttributeError):
                tags = None
            if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
                raise RegistryError.from_response(response, detail='tags/list did not answer {"tags": [strings]}')
            valid = [tag for tag in tags if TAG_PATTERN.fullmatch(tag)]
            if len(valid) != len(tags):
                skipped += len(tags) - len(valid)
                refused = [shown(redact(tag), 60) for tag in tags if not TAG_PATTERN.fullmatch(tag)]
                invalid += refused[: 3 - len(invalid)]
            yield valid
            match = _LINK_NEXT.search(response.headers.get("link", ""))
            next_path = urljoin(str(response.url), match.group(1)) if match else None
    finally:
        if skipped:
            transport.warn(f"{transport.repository} listed {skipped} tag(s) outside the tag grammar, skipped: "
                           f"{', '.join(invalid)}{' ...' if skipped > len(invalid) else ''}")

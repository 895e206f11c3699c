"""A tiny independent OCI distribution client for pushing test images and reading registries back."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpx

from standins.images import Blob, Manifest
from standins.tokens import Credential

MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class PushError(RuntimeError):
    """A registry refused a request made while pushing or reading a test image."""


@dataclass(frozen=True)
class PushedImage:
    """What was pushed where: the top digest, every child manifest digest, every blob digest and size."""

    host: str
    repository: str
    manifest: Manifest
    tags: tuple[str, ...]

    @property
    def digest(self) -> str:
        """Return the top manifest's digest (the index for multi-platform images)."""
        return self.manifest.digest

    @property
    def media_type(self) -> str:
        """Return the top manifest's media type."""
        return self.manifest.media_type

    @property
    def child_digests(self) -> tuple[str, ...]:
        """Return the digests of the index's child manifests (empty for a single image)."""
        return tuple(child.digest for child in self.manifest.children)

    @property
    def manifest_digests(self) -> tuple[str, ...]:
        """Return every manifest digest of the tree, children first."""
        return tuple(m.digest for m in self.manifest.walk())

    @property
    def blobs(self) -> dict[str, int]:
        """Return every distinct blob digest with its size."""
        return {digest: blob.size for digest, blob in self.manifest.all_blobs().items()}

    @property
    def blob_bytes(self) -> int:
        """Return the total size of the distinct blobs."""
        return sum(self.blobs.values())

    def ref(self, reference: str | None = None) -> str:
        """Return `HOST/REPO:TAG` or `HOST/REPO@DIGEST` (default: the first tag, else the digest)."""
        reference = reference or (self.tags[0] if self.tags else self.digest)
        sep = "@" if ":" in reference else ":"
        return f"{self.host}/{self.repository}{sep}{reference}"


@dataclass
class RegistryClient:
    """A minimal client for one repository: Basic or Bearer (token endpoint) auth, blobs, manifests, tags."""

    url: str
    repository: str
    credential: Credential | None = None
    actions: str = "pull,push"
    timeout: float = 60.0
    _auth: str | None = field(default=None, repr=False)
    _http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60.0), repr=False)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _login(self, challenge: str) -> None:
        scheme, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        if scheme.lower() == "basic":
            if self.credential is None:
                raise PushError(f"{self.url} wants Basic auth and no credential was given")
            self._auth = self.credential.basic()
            return
        # Bearer: ask the realm for a token for this repository's scope, with Basic credentials if any
        query = {"service": params.get("service", ""), "scope": f"repository:{self.repository}:{self.actions}"}
        headers = {"Authorization": self.credential.basic()} if self.credential else {}
        answer = self._http.get(params["realm"], params=query, headers=headers, timeout=self.timeout)
        if answer.status_code != 200:
            raise PushError(f"token endpoint answered {answer.status_code}: {answer.text[:200]}")
        body = answer.json()
        self._auth = "Bearer " + (body.get("token") or body["access_token"])

    def request(self, method: str, path: str, *, ok: Iterable[int] = (200, 201, 202),
                headers: dict[str, str] | None = None, content: bytes | Iterable[bytes] | None = None,
                follow_redirects: bool = False) -> httpx.Response:
        """Send a request under /v2/<repository>/ (or to an absolute URL), logging in once on a 401."""
        url = path if path.startswith("http") else f"{self.url}/v2/{self.repository}/{path}"
        for attempt in range(2):
            sent = dict(headers or {})
            if self._auth:
                sent["Authorization"] = self._auth
            response = self._http.request(method, url, headers=sent, content=content, timeout=self.timeout,
                                          follow_redirects=follow_redirects)
            # a streamed body cannot be sent twice: callers log in with a HEAD or POST first
            if response.status_code != 401 or attempt or not isinstance(content, (bytes, type(None))):
                break
            self._login(response.headers.get("WWW-Authenticate", ""))
        if response.status_code not in tuple(ok):
            raise PushError(f"{method} {url} answered {response.status_code}: {response.text[:300]}")
        return response

    def has_blob(self, digest: str) -> bool:
        """Return whether the repository has the blob (HEAD)."""
        return self.request("HEAD", f"blobs/{digest}", ok=(200, 404)).status_code == 200

    def put_blob(self, blob: Blob) -> None:
        """Upload a blob monolithically (POST, then one PUT with the whole body) unless it is there."""
        if self.has_blob(blob.digest):
            return
        started = self.request("POST", "blobs/uploads/", ok=(202,))
        location = urljoin(f"{self.url}/", started.headers["Location"])
        location += ("&" if "?" in location else "?") + f"digest={blob.digest}"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}
        body = blob.data if blob.data is not None else blob.chunks()
        self.request("PUT", location, ok=(201,), headers=headers, content=body)

    def put_manifest(self, manifest: Manifest, reference: str) -> str:
        """PUT the manifest's exact bytes under a tag or its digest; return the digest the registry reports."""
        response = self.request("PUT", f"manifests/{reference}", ok=(201,), content=manifest.raw,
                                headers={"Content-Type": manifest.media_type})
        return response.headers.get("Docker-Content-Digest", manifest.digest)

    def get_manifest(self, reference: str) -> tuple[str, bytes]:
        """Return the media type and exact bytes of a manifest."""
        response = self.request("GET", f"manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT})
        return response.headers.get("Content-Type", ""), response.content

    def manifest_exists(self, reference: str) -> bool:
        """Return whether a manifest exists (HEAD)."""
        response = self.request("HEAD", f"manifests/{reference}", ok=(200, 404), headers={"Accept": MANIFEST_ACCEPT})
        return response.status_code == 200

    def get_blob(self, digest: str) -> bytes:
        """Return a (small) blob's bytes."""
        return self.request("GET", f"blobs/{digest}", follow_redirects=True).content

    def tags(self) -> list[str]:
        """Return the repository's tags (first page of up to 10000)."""
        response = self.request("GET", "tags/list?n=10000", ok=(200, 404))
        return [] if response.status_code == 404 else list(response.json().get("tags") or [])

    def delete_manifest(self, digest: str) -> None:
        """Delete a manifest by digest (the stand-ins run with `delete.enabled`)."""
        self.request("DELETE", f"manifests/{digest}", ok=(202, 404))


def push(manifest: Manifest, url: str, repository: str, tags: Iterable[str] = (),
         credential: Credential | None = None) -> PushedImage:
    """Push a manifest tree: blobs, then children by digest, then the top by digest and under each tag."""
    tags = tuple(tags)
    with RegistryClient(url.rstrip("/"), repository, credential) as client:
        for blob in manifest.all_blobs().values():
            client.put_blob(blob)
        for item in manifest.walk():
            client.put_manifest(item, item.digest)
        for tag in tags:
            client.put_manifest(manifest, tag)
    host = url.split("://", 1)[-1].rstrip("/")
    return PushedImage(host, repository, manifest, tags)

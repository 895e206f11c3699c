"""In-process HTTP wrappers that make a real registry answer like one that enforces less (ECR may not
enforce what docker-registry does), so that each of our own guards is what a test sees.

- `PermissiveManifests`: the destination accepts every manifest PUT without checking what it references
  (answering 201 with the digest of the body, or the digest it is told to claim) and records it.
- `RewriteManifestBodies`: the source serves manifest GETs whose bytes changed (one more trailing newline:
  still valid JSON, still the same references, another digest), keeping the Docker-Content-Digest header.
"""

from __future__ import annotations

import hashlib
import re
import threading

import httpx

_MANIFEST = re.compile(r"^/v2/(.+)/manifests/([^/]+)$")


class PermissiveManifests(httpx.BaseTransport):
    """Wraps the destination: manifest PUTs are accepted unchecked (not forwarded) and recorded by reference."""

    def __init__(self, claim: str | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.claim = claim  # a Docker-Content-Digest to answer instead of the body's digest
        self.puts: list[str] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer manifest PUTs; pass everything else through."""
        match = _MANIFEST.match(request.url.path)
        if request.method != "PUT" or not match:
            return self.inner.handle_request(request)
        body = request.read()
        with self._lock:
            self.puts.append(match.group(2))
        digest = self.claim or "sha256:" + hashlib.sha256(body).hexdigest()
        return httpx.Response(201, headers={"Docker-Content-Digest": digest, "Location": request.url.path})

    def close(self) -> None:
        """Close the wrapped transport."""
        self.inner.close()


class RewriteManifestBodies(httpx.BaseTransport):
    """Wraps the source: GETs of `manifests/<reference>` for the given references get one more byte."""

    def __init__(self, references: set[str]) -> None:
        self.inner = httpx.HTTPTransport()
        self.references = references
        self.rewritten = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Append a newline to matching manifest bodies; headers (Docker-Content-Digest) stay as sent."""
        response = self.inner.handle_request(request)
        match = _MANIFEST.match(request.url.path)
        if request.method != "GET" or not match or match.group(2) not in self.references or response.status_code != 200:
            return response
        body = response.read() + b"\n"
        response.close()
        self.rewritten += 1
        headers = [(k, v) for k, v in response.headers.items() if k.lower() not in ("content-length",
                                                                                    "content-encoding")]
        return httpx.Response(200, headers=[*headers, ("Content-Length", str(len(body)))], content=body)

    def close(self) -> None:
        """Close the wrapped transport."""
        self.inner.close()

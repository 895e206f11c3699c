"""A small registry on loopback that can misbehave on purpose, and records every request exactly as sent.

It serves one repository from memory (manifests, blobs, a tags list that may hold anything) and accepts
pushes (monolithic uploads, manifests). It never normalises a path: a request for `/v2/a/../b` is seen
(and recorded) as such, so a test can tell what a client really sent. `on(method, regex, behaviour)`
hands matching requests to a behaviour (standins/hostile_behaviours.py: endless bodies, drips, silence,
echoed credentials, foreign realms, ...). With `token_auth=True` it asks for a Bearer token from its own
`/token` endpoint (or `realm`), like ghcr.io, and records the Basic credentials that endpoint receives.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from standins.images import Manifest, sha256_digest
from standins.loopback import LoopbackServer, QuietHandler

Behaviour = Callable[["HostileHandler"], None]
MAX_RECORDED = 10_000


@dataclass(frozen=True)
class Seen:
    """One request as it arrived: method, raw request target, headers (lower-case names)."""

    method: str
    path: str
    headers: dict[str, str]


class HostileRegistry(LoopbackServer):
    """An in-memory registry for `repository` whose answers a test can replace per request."""

    thread_name = "hostile-registry"

    def __init__(self, repository: str, *, token_auth: bool = False, realm: str | None = None) -> None:
        super().__init__()
        self.repository = repository
        self.token_auth = token_auth
        self.realm = realm  # None: this server's own /token
        self.manifests: dict[str, tuple[str, bytes]] = {}  # tag or digest -> (media type, raw)
        self.blobs: dict[str, bytes] = {}
        self.tags: list[str] = []
        self.tokens: set[str] = set()
        self.token_logins: list[str] = []  # decoded `user:password` the token endpoint received
        self.requests: list[Seen] = []
        self.uploads_deleted: list[str] = []
        self.routes: list[tuple[str | None, re.Pattern[str], Behaviour]] = []
        self.location: Callable[[str], str] = lambda upload: f"/v2/{self.repository}/blobs/uploads/{upload}"
        self._lock = threading.Lock()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """Return the handler bound to this registry."""
        return type("BoundHostileHandler", (HostileHandler,), {"registry": self})

    def serve(self, image: Manifest, tags: Sequence[str] = ()) -> HostileRegistry:
        """Hold an image tree (every manifest by digest, every blob) and list `tags` (any strings) for its root."""
        for manifest in image.walk():
            self.manifests[manifest.digest] = (manifest.media_type, manifest.raw)
            for digest, blob in ((b.digest, b) for b in manifest.blobs):
                self.blobs[digest] = b"".join(blob.chunks())
        for tag in tags:
            self.manifests[tag] = (image.media_type, image.raw)
            self.tags.append(tag)
        return self

    def on(self, method: str | None, path: str, behaviour: Behaviour) -> HostileRegistry:
        """Answer requests matching method (None: any) and a regex on the raw path with `behaviour`."""
        self.routes.append((method, re.compile(path), behaviour))
        return self

    def record(self, seen: Seen) -> None:
        """Keep one request (the first MAX_RECORDED)."""
        with self._lock:
            if len(self.requests) < MAX_RECORDED:
                self.requests.append(seen)

    def paths(self) -> list[str]:
        """Return the raw paths requested so far."""
        return [r.path for r in self.requests]

    def authorizations(self) -> list[str]:
        """Return every Authorization header value received."""
        return [r.headers["authorization"] for r in self.requests if "authorization" in r.headers]


class HostileHandler(QuietHandler):
    """Serve the registry API for one repository; hand matching requests to a behaviour."""

    disable_nagle_algorithm = True
    registry: HostileRegistry

    def handle(self) -> None:
        """Serve the connection; a client that hangs up (as it should on a hostile answer) is no error."""
        try:
            super().handle()
        except OSError:
            pass

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        """Send a complete answer with Content-Length."""
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        """Send a distribution-spec error body."""
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self.reply(status, body, {"Content-Type": "application/json", **(headers or {})})

    def body(self) -> bytes:
        """Read the request body (Content-Length or chunked)."""
        return b"".join(self._body_chunks())

    def _body_chunks(self) -> Iterator[bytes]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                yield self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            data = self.rfile.read(min(remaining, 1 << 20))
            if not data:
                return
            remaining -= len(data)
            yield data

    def _handle(self) -> None:
        reg = self.registry
        reg.record(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        path = urlsplit(self.path).path
        for method, pattern, behaviour in reg.routes:
            if method in (None, self.command) and pattern.search(self.path):
                return behaviour(self)
        if path == "/token":
            return self._token()
        if reg.token_auth and path.startswith("/v2/") and not self.authorized():
            return self.ask_token()
        return self._api(path)

    def ask_token(self) -> None:
        """Answer 401 with a Bearer challenge naming the realm (this server's /token unless set)."""
        reg = self.registry
        self.body()
        realm = reg.realm or f"http://{self.headers.get('Host')}/token"
        self.error(401, "UNAUTHORIZED", "authentication required", {
            "WWW-Authenticate": f'Bearer realm="{realm}",service="hostile",scope="repository:{reg.repository}:pull"'})

    def authorized(self) -> bool:
        """Tell whether the request carries a Bearer token this server issued."""
        value = self.headers.get("Authorization", "")
        return value.startswith("Bearer ") and value[len("Bearer "):] in self.registry.tokens

    def _token(self) -> None:
        value = self.headers.get("Authorization", "")
        if value.startswith("Basic "):
            self.registry.token_logins.append(base64.b64decode(value[6:]).decode(errors="replace"))
        token = "HOSTILE-TOKEN-" + secrets.token_hex(8)
        self.registry.tokens.add(token)
        self.reply(200, json.dumps({"token": token, "expires_in": 300}).encode(), {"Content-Type": "application/json"})

    def _api(self, path: str) -> None:
        reg, prefix = self.registry, f"/v2/{self.registry.repository}/"
        if path == "/v2/":
            return self.reply(200, b"{}", {"Content-Type": "application/json"})
        if not path.startswith(prefix):
            self.body()
            return self.error(404, "NAME_UNKNOWN", "repository name not known to registry")
        rest = path[len(prefix):]
        if rest == "tags/list":
            body = json.dumps({"name": reg.repository, "tags": reg.tags}).encode()
            return self.reply(200, body, {"Content-Type": "application/json"})
        kind, _, reference = rest.partition("/")
        if kind == "manifests" and self.command == "PUT":
            raw = self.body()
            reg.manifests[reference] = (self.headers.get("Content-Type", ""), raw)
            return self.reply(201, headers={"Docker-Content-Digest": sha256_digest(raw)})
        if kind == "manifests" and reference in reg.manifests:
            media_type, raw = reg.manifests[reference]
            return self.reply(200, raw, {"Content-Type": media_type, "Docker-Content-Digest": sha256_digest(raw)})
        if kind == "blobs" and reference.startswith("uploads"):
            return self._upload(reference[len("uploads/"):])
        if kind == "blobs" and reference in reg.blobs:
            return self.reply(200, reg.blobs[reference], {"Docker-Content-Digest": reference,
                                                          "Content-Type": "application/octet-stream"})
        self.body()
        return self.error(404, "MANIFEST_UNKNOWN" if kind == "manifests" else "BLOB_UNKNOWN", "unknown")

    def _upload(self, upload: str) -> None:
        reg = self.registry
        if self.command == "POST":
            self.body()
            return self.reply(202, headers={"Location": reg.location(secrets.token_hex(6))})
        if self.command == "DELETE":
            reg.uploads_deleted.append(upload)
            return self.reply(204)
        data = self.body()
        digest = parse_qs(urlsplit(self.path).query).get("digest", [""])[0]
        if sha256_digest(data) != digest:
            return self.error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        reg.blobs[digest] = data
        return self.reply(201, headers={"Docker-Content-Digest": digest})

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

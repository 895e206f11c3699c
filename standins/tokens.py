"""A GHCR-like token server: Basic-authenticated principals get JWTs that docker-registry's token auth accepts."""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import hmac
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from standins.loopback import LoopbackServer, QuietHandler

PULL = frozenset({"pull"})
PULL_PUSH = frozenset({"pull", "push"})
DENIED_BODY = {"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]}
UNAUTHORIZED_BODY = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}


@dataclass(frozen=True)
class Credential:
    """A username and password (or token) for a registry or token endpoint."""

    username: str
    password: str

    def basic(self) -> str:
        """Return the value of an `Authorization: Basic` header for this credential."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def __repr__(self) -> str:
        return f"Credential(username={self.username!r}, password=<hidden>)"


@dataclass(frozen=True)
class Principal:
    """A named login and the actions it gets per repository glob (first matching glob wins)."""

    credential: Credential
    grants: Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class TokenRequest:
    """One call to the token endpoint as recorded by the server (never the password)."""

    username: str | None
    scopes: tuple[str, ...]
    granted: tuple[tuple[str, frozenset[str]], ...]
    status: int

    def repositories(self) -> set[str]:
        """Return the repository names named by this request's scopes."""
        return {scope.split(":")[1] for scope in self.scopes if scope.startswith("repository:")}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenSigner:
    """A throwaway RSA key with a self-signed certificate, signing RS256 JWTs with an `x5c` header."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
        now = dt.datetime.now(dt.timezone.utc)
        self.certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )

    def write_bundle(self, path: Path) -> Path:
        """Write the certificate as the registry's `rootcertbundle` and return its path."""
        path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        return path

    def sign(self, claims: Mapping[str, object]) -> str:
        """Return a compact RS256 JWT for the claims."""
        # distribution 2.8 (registry/auth/token/token.go) verifies the x5c chain against rootcertbundle.
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)


@dataclass
class TokenPolicy:
    """Who gets what: anonymous grants, named principals, and how a logged-in denial looks."""

    anonymous: Mapping[str, frozenset[str]] = field(default_factory=lambda: {"public/*": PULL})
    principals: list[Principal] = field(default_factory=list)
    # ghcr.io answers `denied` when a logged-in credential may not pull; False issues an empty token instead
    deny_at_endpoint: bool = True

    def find(self, username: str, password: str) -> Principal | None:
        """Return the principal with these credentials, or None."""
        for principal in self.principals:
            cred = principal.credential
            if cred.username == username and hmac.compare_digest(cred.password, password):
                return principal
        return None


def _actions_for(grants: Mapping[str, frozenset[str]], repository: str) -> frozenset[str]:
    for pattern, actions in grants.items():
        if fnmatch.fnmatchcase(repository, pattern):
            return actions
    return frozenset()


class TokenServer(LoopbackServer):
    """A threaded `GET /token` endpoint on loopback that records every request it answers."""

    thread_name = "token-server"

    def __init__(self, policy: TokenPolicy, *, service: str = "ghcr-standin", issuer: str = "ghcr-standin-issuer",
                 lifetime: int = 300) -> None:
        super().__init__()
        self.policy = policy
        self.service = service
        self.signer = TokenSigner(issuer)
        self.lifetime = lifetime
        self.requests: list[TokenRequest] = []
        self.issued: list[str] = []  # every bearer token handed out, for the tests' secret searches
        self._lock = threading.Lock()

    @property
    def realm(self) -> str:
        """Return the token endpoint URL the registry advertises."""
        return self.url + "/token"

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """Return the `/token` handler bound to this server."""
        return _handler_for(self)

    def requests_for(self, repository: str) -> list[TokenRequest]:
        """Return the recorded requests whose scopes name this repository."""
        with self._lock:
            return [r for r in self.requests if repository in r.repositories()]

    def issue(self, username: str | None, principal: Principal | None, scopes: list[str]) -> tuple[int, dict]:
        """Decide one token request: return the HTTP status and the JSON body."""
        grants = principal.grants if principal else self.policy.anonymous
        access: list[dict] = []
        granted: list[tuple[str, frozenset[str]]] = []
        asked = 0
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, wanted = rest.rpartition(":")
            if kind != "repository" or not name:
                continue  # e.g. registry:catalog:* (GHCR has no catalog): grant nothing
            asked += 1
            actions = frozenset(wanted.split(",")) & _actions_for(grants, name)
            if actions:
                access.append({"type": "repository", "name": name, "actions": sorted(actions)})
                granted.append((name, actions))
        # a logged-in credential refused every repository it asked for is `denied`, as on ghcr.io
        if principal is not None and asked and not granted and self.policy.deny_at_endpoint:
            return self._record(username, scopes, granted, 403, DENIED_BODY)
        now = int(time.time())
        token = self.signer.sign({
            "iss": self.signer.issuer, "sub": username or "", "aud": self.service,
            "exp": now + self.lifetime, "nbf": now - 30, "iat": now, "jti": secrets.token_hex(8), "access": access,
        })
        body = {"token": token, "access_token": token, "expires_in": self.lifetime}
        with self._lock:
            self.issued.append(token)
        return self._record(username, scopes, granted, 200, body)

    def _record(self, username: str | None, scopes: list[str], granted: list, status: int,
                body: dict) -> tuple[int, dict]:
        with self._lock:
            self.requests.append(TokenRequest(username, tuple(scopes), tuple(granted), status))
        return status, body


def _handler_for(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/token":
                return self._send(404, {"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]})
            query = parse_qs(url.query)
            # docker clients send one scope parameter per resource; each may list several actions
            scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
            header = self.headers.get("Authorization", "")
            username: str | None = None
            principal: Principal | None = None
            if header:
                try:
                    scheme, _, encoded = header.partition(" ")
                    assert scheme.lower() == "basic"
                    username, _, password = base64.b64decode(encoded).decode().partition(":")
                except (AssertionError, ValueError, UnicodeDecodeError):
                    return self._send(401, UNAUTHORIZED_BODY)
                principal = server.policy.find(username, password)
                if principal is None:
                    server._record(username, scopes, [], 401, UNAUTHORIZED_BODY)
                    return self._send(401, UNAUTHORIZED_BODY)
            status, body = server.issue(username, principal, scopes)
            self._send(status, body)

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", f'Basic realm="{server.service}"')
            self.end_headers()
            self.wfile.write(data)

    return Handler

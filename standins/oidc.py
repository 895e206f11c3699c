"""An Actions OIDC issuer on loopback: rotating RSA keys, a JWKS, ID tokens (honest and hostile), the job's endpoint.

Shaped after GitHub's token service (FACTS.md §12): `<issuer>/.well-known/jwks` lists RS256 keys with `kid`s,
ID tokens live 5 minutes (`exp = iat + 300`, `nbf = iat - 600`) and carry ids as JSON strings, and a job gets
its tokens from `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=<aud>` with `Authorization: Bearer
$ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answered `{"value": "<jwt>"}`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from standins.loopback import LoopbackServer, QuietHandler

JWKS_PATH = "/.well-known/jwks"
ID_TOKEN_PATH = "/_apis/distributedtask/idtoken"
LIFETIME = 300  # exp - iat of GitHub's ID tokens
NOT_BEFORE = 600  # iat - nbf in GitHub's example token
OMIT: Any = object()  # pass as a claim's value to leave that claim out


_POOL_SIZE = 32
_pool: list[rsa.RSAPrivateKey] = []
_pool_turn = itertools.count()
_pool_lock = threading.Lock()


def _rsa_key() -> rsa.RSAPrivateKey:
    """Return a 2048-bit RSA key: the first 32 of the process are fresh, then they come round again in turn.

    Making one takes about 0.1 s, and every test starts an issuer with three. Any 32 keys drawn in a row are
    distinct, far more than one test's issuers hold, and every key gets a fresh `kid`.
    """
    with _pool_lock:
        turn = next(_pool_turn)
        if len(_pool) < _POOL_SIZE:
            _pool.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
            return _pool[-1]
        return _pool[turn % _POOL_SIZE]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """One RSA key of the issuer (or of an outsider), with its `kid` and the algorithm it signs with."""

    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    alg: str = "RS256"

    @classmethod
    def generate(cls, kid: str | None = None, alg: str = "RS256") -> SigningKey:
        """Return a 2048-bit key distinct from the last 31 made (a random `kid` unless given)."""
        return cls(kid or secrets.token_hex(8), _rsa_key(), alg)

    def jwk(self) -> dict[str, Any]:
        """Return the public key as a JWKS entry, shaped like GitHub's (`kty`, `n`, `e`, `kid`, `alg`, `use`)."""
        entry = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {"kty": "RSA", "n": entry["n"], "e": entry["e"], "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        """Return the public key in PEM (what an algorithm-confusion attacker signs HS256 with)."""
        return self.private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, claims: Mapping[str, Any], headers: Mapping[str, Any] | None = None) -> str:
        """Return a compact JWT of the claims signed with this key, `kid` in the header."""
        return jwt.encode(dict(claims), self.private_key, algorithm=self.alg,
                          headers={"typ": "JWT", "kid": self.kid, **(headers or {})})


@dataclass(frozen=True)
class Job:
    """The workflow job an ID token speaks for: its repository (names and numeric ids), ref, commit and run."""

    repository: str = "octo-org/app"
    repository_id: int = 2001
    repository_owner_id: int = 1001
    ref: str = "refs/heads/main"
    sha: str = "4a1d7e0c9b8f6e5d4c3b2a19087f6e5d4c3b2a10"
    workflow: str = "release"
    run_id: int = 5001
    run_attempt: int = 1
    actor: str = "octocat"
    actor_id: int = 3001
    event_name: str = "push"
    visibility: str = "private"

    @property
    def owner(self) -> str:
        """Return the repository owner's login."""
        return self.repository.split("/", 1)[0]

    def claims(self) -> dict[str, Any]:
        """Return GitHub's custom claims for this job; ids are JSON strings, as GitHub sends them (FACTS.md §12)."""
        workflow_ref = f"{self.repository}/.github/workflows/{self.workflow}.yml@{self.ref}"
        return {
            "sub": f"repo:{self.repository}:ref:{self.ref}",
            "ref": self.ref, "ref_type": "branch" if self.ref.startswith("refs/heads/") else "tag",
            "sha": self.sha, "repository": self.repository, "repository_id": str(self.repository_id),
            "repository_owner": self.owner, "repository_owner_id": str(self.repository_owner_id),
            "repository_visibility": self.visibility, "run_id": str(self.run_id),
            "run_number": "1", "run_attempt": str(self.run_attempt), "actor": self.actor,
            "actor_id": str(self.actor_id), "workflow": self.workflow, "workflow_ref": workflow_ref,
            "job_workflow_ref": workflow_ref, "event_name": self.event_name, "runner_environment": "github-hosted",
        }


@dataclass(frozen=True)
class IdTokenRequest:
    """One call to the job's ID-token endpoint: the audience asked for and the status answered (no token)."""

    audience: str | None
    status: int


class OidcIssuer(LoopbackServer):
    """GitHub Actions' token service on loopback: a JWKS under the issuer, and a job's ID-token endpoint.

    - `issuer`: `http://127.0.0.1:PORT` plus `path` (e.g. `/_services/token`, as on GHES); `jwks_url` is
      `<issuer>/.well-known/jwks`, and `jwks_fetches` counts the GETs it answered.
    - Keys: `keys` (published, by kid), `current` (the one that signs), `add_key`, `rotate`, `retire`;
      `outsider` is a key that is never published.
    - Tokens: `claims(...)`, `mint(...)` (any claim overridden, or left out with `OMIT`), and the hostile
      `mint_by_outsider`, `mint_unknown_kid`, `mint_alg_none`, `mint_hs256_public_key`, `mint_expired`,
      `mint_not_yet_valid`.
    - The JWKS answer can misbehave: `jwks_status`, `jwks_padding` (filler bytes), `jwks_delay` (seconds
      before answering), `jwks_trickle` (seconds between body bytes, which then end at the connection's close).
    - The job's endpoint: `actions_env()` gives `ACTIONS_ID_TOKEN_REQUEST_URL` / `..._TOKEN`; it mints for
      `job` (a `Job`) and records each call in `id_token_requests`; `minted` holds every token handed out.
    """

    thread_name = "oidc-issuer"

    def __init__(self, path: str = "", *, job: Job | None = None, keys: int = 2) -> None:
        super().__init__()
        self.path = path.rstrip("/")
        self.job = job or Job()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.keys: dict[str, SigningKey] = {}
        for _ in range(max(keys, 1)):
            self.add_key()
        self.current = next(iter(self.keys.values()))
        self.outsider = SigningKey.generate()
        self.request_token = "idreq_" + secrets.token_urlsafe(24)
        self.jwks_status = 200
        self.jwks_padding = 0
        self.jwks_delay = 0.0
        self.jwks_trickle = 0.0
        self.id_token_requests: list[IdTokenRequest] = []
        self.minted: list[str] = []
        self._jwks_fetches = 0

    @property
    def issuer(self) -> str:
        """Return the issuer URL (`iss` of honest tokens)."""
        return self.url + self.path

    @property
    def jwks_url(self) -> str:
        """Return `<issuer>/.well-known/jwks`."""
        return self.issuer + JWKS_PATH

    @property
    def jwks_fetches(self) -> int:
        """Return how many times the JWKS was asked for."""
        with self._lock:
            return self._jwks_fetches

    @property
    def id_token_url(self) -> str:
        """Return the job's ID-token URL; like the runner's, it already has a query string."""
        return self.url + ID_TOKEN_PATH + "?api-version=2.0"

    def actions_env(self) -> dict[str, str]:
        """Return the two variables a job with `id-token: write` gets (FACTS.md §12)."""
        return {"ACTIONS_ID_TOKEN_REQUEST_URL": self.id_token_url, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token}

    def add_key(self, alg: str = "RS256") -> SigningKey:
        """Publish a new key in the JWKS (it signs only once made `current`) and return it."""
        key = SigningKey.generate(alg=alg)
        with self._lock:
            self.keys = {**self.keys, key.kid: key}
        return key

    def rotate(self) -> SigningKey:
        """Publish a new key and sign with it from now on; the old keys stay published."""
        self.current = self.add_key()
        return self.current

    def retire(self, kid: str) -> None:
        """Remove a key from the JWKS."""
        with self._lock:
            self.keys = {k: v for k, v in self.keys.items() if k != kid}

    def jwks(self) -> dict[str, Any]:
        """Return the key set as served."""
        with self._lock:
            keys = list(self.keys.values())
        return {"keys": [key.jwk() for key in keys]}

    def claims(self, audience: str, *, job: Job | None = None, now: int | None = None,
               **overrides: Any) -> dict[str, Any]:
        """Return an honest token's claims for `job` (default `self.job`), then `overrides` (`OMIT` removes)."""
        iat = int(time.time()) if now is None else now
        claims: dict[str, Any] = {
            "jti": secrets.token_hex(16), "aud": audience, "iss": self.issuer,
            "nbf": iat - NOT_BEFORE, "exp": iat + LIFETIME, "iat": iat, **(job or self.job).claims(),
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not OMIT}

    def mint(self, audience: str, *, job: Job | None = None, now: int | None = None, key: SigningKey | None = None,
             headers: Mapping[str, Any] | None = None, **overrides: Any) -> str:
        """Return an ID token signed by `key` (default: the current key); see `claims` for the rest."""
        token = (key or self.current).sign(self.claims(audience, job=job, now=now, **overrides), headers)
        with self._lock:
            self.minted.append(token)
        return token

    def mint_by_outsider(self, audience: str, *, kid: str | None = None, **overrides: Any) -> str:
        """Return a token validly signed by a key outside the JWKS, under a published kid (default: current's)."""
        outsider = SigningKey(kid or self.current.kid, self.outsider.private_key)
        return self.mint(audience, key=outsider, **overrides)

    def mint_unknown_kid(self, audience: str, *, kid: str | None = None, **overrides: Any) -> str:
        """Return a token signed by an unpublished key under a kid the JWKS does not list."""
        return self.mint_by_outsider(audience, kid=kid or "unknown-" + secrets.token_hex(6), **overrides)

    def mint_alg_none(self, audience: str, **overrides: Any) -> str:
        """Return an unsigned token (`alg: none`) under the current kid."""
        header = {"typ": "JWT", "alg": "none", "kid": self.current.kid}
        return self._compact(header, self.claims(audience, **overrides), lambda _: b"")

    def mint_hs256_public_key(self, audience: str, **overrides: Any) -> str:
        """Return a token HMAC-signed (HS256) with the current key's public PEM: algorithm confusion."""
        header = {"typ": "JWT", "alg": "HS256", "kid": self.current.kid}
        secret = self.current.public_pem()
        return self._compact(header, self.claims(audience, **overrides),
                             lambda data: hmac.new(secret, data, hashlib.sha256).digest())

    def mint_expired(self, audience: str, *, ago: int = 3600, **overrides: Any) -> str:
        """Return an honestly signed token issued `ago` seconds ago (expired `ago - 300` s ago)."""
        return self.mint(audience, now=int(time.time()) - ago, **overrides)

    def mint_not_yet_valid(self, audience: str, *, ahead: int = 3600, **overrides: Any) -> str:
        """Return an honestly signed token whose `nbf` and `iat` are `ahead` seconds in the future."""
        now = int(time.time()) + ahead
        return self.mint(audience, now=now, **{"nbf": now, **overrides})

    def id_token_for(self, audience: str | None) -> str:
        """Mint what the job's endpoint hands out: `job`'s claims; no audience means the owner's URL, as GitHub does."""
        return self.mint(audience or f"https://github.com/{self.job.owner}")

    def stop(self) -> None:
        """Cut short any delayed answer, then stop serving."""
        self._stopping.set()
        super().stop()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """Return the handler bound to this issuer."""
        return _handler_for(self)

    def _compact(self, header: dict[str, Any], claims: dict[str, Any], signer: Any) -> str:
        signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        token = signing_input + "." + _b64url(signer(signing_input.encode()))
        with self._lock:
            self.minted.append(token)
        return token

    def _count_jwks_fetch(self) -> None:
        with self._lock:
            self._jwks_fetches += 1

    def _record(self, audience: str | None, status: int) -> None:
        with self._lock:
            self.id_token_requests.append(IdTokenRequest(audience, status))


def _handler_for(issuer: OidcIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            try:
                if url.path == issuer.path + JWKS_PATH:
                    return self._jwks()
                if url.path == ID_TOKEN_PATH:
                    return self._id_token(parse_qs(url.query))
                self._send(404, b'{"message": "Not Found"}')
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a bounded fetch does, on a slow answer)

        def _jwks(self) -> None:
            issuer._count_jwks_fetch()
            if issuer._stopping.wait(issuer.jwks_delay):
                return
            body = issuer.jwks()
            if issuer.jwks_padding:
                body["padding"] = "x" * issuer.jwks_padding
            data = json.dumps(body).encode()
            if not issuer.jwks_trickle:
                return self._send(issuer.jwks_status, data)
            # no Content-Length: the body ends when the connection closes, so a cut-off one looks complete
            self.close_connection = True
            self.send_response(issuer.jwks_status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            for index in range(len(data)):
                if issuer._stopping.wait(issuer.jwks_trickle):
                    return
                self.wfile.write(data[index:index + 1])
                self.wfile.flush()

        def _id_token(self, query: dict[str, list[str]]) -> None:
            audience = query.get("audience", [None])[0]
            scheme, _, token = self.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), issuer.request_token.encode()):
                issuer._record(audience, 401)
                return self._send(401, b'{"message": "Unauthorized"}')
            issuer._record(audience, 200)
            self._send(200, json.dumps({"value": issuer.id_token_for(audience)}).encode())

        def _head(self, status: int, length: int) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(length))
            self.end_headers()

        def _send(self, status: int, data: bytes) -> None:
            self._head(status, len(data))
            self.wfile.write(data)

    return Handler

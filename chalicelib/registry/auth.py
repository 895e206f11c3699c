"""Credentials and the `WWW-Authenticate` handshake (Basic, and Bearer through a token endpoint).

Credentials are named by kind ("installation token", "anonymous", ...) in every message; their values
live only in `Credential.password` (excluded from repr) and in the Authorization headers built here.

Handshake (distribution spec "Token Authentication Specification"; docker/distribution docs/spec/auth):
1. A request goes out with the cached Authorization for its scopes, if any.
2. A 401 carries `WWW-Authenticate: Basic realm=...` (ECR) or `Bearer realm=...,service=...,scope=...`
   (ghcr.io, distribution with token auth).
3. Basic: the credential's user:password is sent on every later request to the host.
   Bearer: GET realm?service=...&scope=repository:NAME:ACTIONS with the credential as Basic auth
   (none when anonymous); the answer `{"token"|"access_token", "expires_in"}` is cached per scope.
   The realm is the registry's choice, so it is checked first: it must be the registry's own origin
   (scheme, host, port), or one an operator allows in GHCR2ECR_TOKEN_REALMS.
4. The request is sent again. A 401 after a fresh token, a 403, or a token endpoint answering 401/403
   means this credential is denied: the chain moves to the next credential.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from chalicelib.registry import redact
from chalicelib.registry.errors import RegistryError
from chalicelib.registry.reference import is_loopback

DEFAULT_USERNAME = "x-access-token"
TOKEN_MARGIN_SECONDS = 30  # renew a bearer token this long before it expires
TOKEN_MAX_BYTES = 1024 * 1024  # a token answer is a few KiB; more is refused
_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


class Credential(Protocol):
    """Something that yields user/password for Basic auth (or None for anonymous)."""

    @property
    def kind(self) -> str:
        """What the credential is, for logs and reports ("installation token", "anonymous"...)."""
        ...

    def basic(self) -> tuple[str, str] | None:
        """Return (username, password), or None when anonymous."""
        ...


@dataclass(frozen=True)
class StaticCredential:
    """A fixed username/password (token), or anonymous when password is None."""

    kind: str
    username: str = DEFAULT_USERNAME
    password: str | None = field(default=None, repr=False)

    def basic(self) -> tuple[str, str] | None:
        """Return (username, password), or None when anonymous."""
        return None if self.password is None else (self.username, self.password)


ANONYMOUS = StaticCredential(kind="anonymous")


class TokenDenied(Exception):
    """The token endpoint refused this credential (401/403)."""


def _env(env: Mapping[str, str], name: str) -> str | None:
    """Read one variable, treating blank as unset."""
    value = env.get(name, "").strip()
    return value or None


def parse_fallback_credential(text: str, default_username: str) -> StaticCredential:
    """Read a fallback credential: a plain token, or JSON `{"username", "accessToken"}`."""
    text = text.strip()
    if text.startswith("{"):
        try:
            document: Any = json.loads(text)
        except ValueError:
            raise ValueError("GHCR2ECR_SOURCE_FALLBACK_TOKEN looks like JSON but does not parse") from None
        token = document.get("accessToken") if isinstance(document, dict) else None
        if not isinstance(token, str) or not token:
            raise ValueError('GHCR2ECR_SOURCE_FALLBACK_TOKEN JSON needs {"username": ..., "accessToken": ...}')
        username = document.get("username") or default_username
        return StaticCredential(kind="fallback token", username=str(username), password=token)
    return StaticCredential(kind="fallback token", username=default_username, password=text)


def handoff_build(env: Mapping[str, str]) -> bool:
    """Tell whether this is a hand-off build: its installation token is apart, its source token the job's."""
    return _env(env, "GHCR2ECR_INSTALLATION_TOKEN") is not None


def source_credentials(env: Mapping[str, str]) -> list[Credential]:
    """Return the source chain: installation token, anonymous, fallback token (DESIGN.md, Credentials).

    In a hand-off build (GHCR2ECR_INSTALLATION_TOKEN is set apart) the first one is the tenant job's token.
    """
    chain: list[Credential] = []
    token = _env(env, "GHCR2ECR_SOURCE_TOKEN")
    if token:
        kind = "workflow job token" if handoff_build(env) else "installation token"
        chain.append(StaticCredential(kind=kind, username=DEFAULT_USERNAME, password=token))
    chain.append(ANONYMOUS)
    fallback = _env(env, "GHCR2ECR_SOURCE_FALLBACK_TOKEN")
    if fallback:
        username = _env(env, "GHCR2ECR_SOURCE_USERNAME") or DEFAULT_USERNAME
        chain.append(parse_fallback_credential(fallback, username))
    return chain


def basic_dest_credential(env: Mapping[str, str]) -> Credential:
    """Return the non-ECR destination credential: GHCR2ECR_DEST_USERNAME/PASSWORD, else anonymous."""
    password = _env(env, "GHCR2ECR_DEST_PASSWORD")
    if password is None:
        return ANONYMOUS
    return StaticCredential(kind="destination password", username=_env(env, "GHCR2ECR_DEST_USERNAME") or "",
                            password=password)


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Return every credential value the environment holds, to keep them out of any message."""
    values = [_env(env, name) for name in ("GHCR2ECR_SOURCE_TOKEN", "GHCR2ECR_SOURCE_FALLBACK_TOKEN",
                                           "GHCR2ECR_DEST_PASSWORD", "GHCR2ECR_INSTALLATION_TOKEN")]
    fallback = values[1]
    if fallback:
        try:
            values.append(parse_fallback_credential(fallback, DEFAULT_USERNAME).password)
        except ValueError:
            pass
    return [value for value in values if value]


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split `Bearer realm="...",service="..."` into ("bearer", {"realm": ..., ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {key.lower(): quoted or unquoted for key, quoted, unquoted in _PARAM.findall(rest)}
    return scheme.lower(), params


def scope_strings(scopes: Sequence[tuple[str, str]]) -> list[str]:
    """Render (repository, actions) pairs as token-endpoint scopes `repository:NAME:ACTIONS`."""
    return [f"repository:{name}:{actions}" for name, actions in scopes]


class Authenticator:
    """Holds a credential chain and the host's auth scheme; builds Authorization headers per scope."""

    def __init__(self, credentials: Sequence[Credential], *, clock: Callable[[], float] = time.monotonic,
                 realms: Sequence[Origin] = ()) -> None:
        if not credentials:
            raise ValueError("at least one credential (possibly anonymous) is needed")
        self.credentials = list(credentials)
        self.realms = tuple(realms)  # token endpoint origins allowed besides the registry's own
        self.index = 0
        self._clock = clock
        self._scheme: str | None = None
        self._tokens: dict[tuple[int, tuple[str, ...]], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def tried(self) -> list[str]:
        """Return the kinds of the credentials tried so far, in order."""
        return [c.kind for c in self.credentials[: self.index + 1]]

    def advance(self, from_index: int) -> str | None:
        """Move past a denied credential, once per denial across threads.

        Returns "moved" when this call moved on, "already" when another thread did, None when none is left.
        """
        with self._lock:
            if self.index != from_index:
                return "already"
            if self.index + 1 >= len(self.credentials):
                return None
            self.index += 1
            return "moved"

    def header(self, scopes: Sequence[tuple[str, str]]) -> tuple[int, str | None]:
        """Return the credential index in use and the Authorization header to send for these scopes."""
        with self._lock:
            index, scheme = self.index, self._scheme
            cached = self._tokens.get((index, tuple(scope_strings(scopes))))
        if scheme == "basic":
            return index, _basic_header(self.credentials[index])
        if scheme == "bearer" and cached and cached[1] > self._clock():
            return index, f"Bearer {cached[0]}"
        return index, None

    def authenticate(self, challenge: str, scopes: Sequence[tuple[str, str]],
                     send: Callable[..., httpx.Response], index: int, registry: str) -> None:
        """Answer a 401 challenge from `registry` (its base URL) for credential `index`, caching the answer.

        Raises TokenDenied when the token endpoint refuses the credential, RegistryError otherwise.
        """
        scheme, params = parse_challenge(challenge)
        credential = self.credentials[index]
        if scheme == "basic":
            with self._lock:
                self._scheme = "basic"
            if credential.basic() is None:
                raise TokenDenied("Basic auth required and no credential given")
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryError("GET", "(challenge)", 401, detail=f"unsupported authentication scheme {scheme!r}")
        check_realm(params["realm"], registry, self.realms)
        # Step 3 (Bearer): ask the realm for a token for exactly these scopes.
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        query += [("scope", s) for s in scope_strings(scopes)]
        basic = credential.basic()
        if basic:
            redact.register_basic(*basic)
        response = send("GET", params["realm"], params=query, auth=httpx.BasicAuth(*basic) if basic else None,
                        max_bytes=TOKEN_MAX_BYTES)
        if response.status_code in (401, 403):
            raise TokenDenied(f"token endpoint answered {response.status_code}")
        if response.status_code != 200:
            raise RegistryError.from_response(response, detail="token endpoint")
        try:
            document = response.json()
            token = document.get("token") or document.get("access_token")
            lifetime = float(document.get("expires_in") or 60)
        except (ValueError, AttributeError):
            token, lifetime = None, 0.0
        if not isinstance(token, str) or not token:
            raise RegistryError.from_response(response, detail="token endpoint sent no token")
        redact.register(token)
        with self._lock:
            self._scheme = "bearer"
            expires = self._clock() + max(lifetime - TOKEN_MARGIN_SECONDS, lifetime / 2)
            self._tokens[(index, tuple(scope_strings(scopes)))] = (token, expires)


Origin = tuple[str, str, int]
REALMS_SETTING = "GHCR2ECR_TOKEN_REALMS"


def origin_of(url: str) -> Origin:
    """Return (scheme, lower-case host, port) of a URL, the port defaulted by scheme (RFC 6454 origin)."""
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host.lower(), parsed.port or {"https": 443, "http": 80}.get(parsed.scheme, 0)


def allowed_realms(env: Mapping[str, str]) -> tuple[Origin, ...]:
    """Read GHCR2ECR_TOKEN_REALMS: comma-separated origins (`https://auth.example.com[:port]`) besides each
    registry's own that may receive its credential; ValueError when one is malformed."""
    origins: list[Origin] = []
    for item in filter(None, (part.strip() for part in env.get(REALMS_SETTING, "").split(","))):
        try:
            origin = origin_of(item)
        except httpx.InvalidURL:
            origin = ("", "", 0)
        if not origin[1] or origin[0] not in ("https", "http") or (origin[0] == "http" and not is_loopback(origin[1])):
            raise ValueError(f"{REALMS_SETTING}: {item[:80]!r} is not an https:// origin (http:// only for loopback)")
        origins.append(origin)
    return tuple(origins)


def check_realm(realm: str, registry: str, allowed: Sequence[Origin] = ()) -> None:
    """Refuse a token endpoint the credential must not go to.

    Allowed: the registry's own origin (scheme, host and port: ghcr.io's realm is https://ghcr.io/token),
    and the origins an operator lists in GHCR2ECR_TOKEN_REALMS. Anything else, another port of the same
    host included, never gets the credential.
    """
    try:
        target = origin_of(realm)
    except httpx.InvalidURL:
        target = ("", "", 0)
    own = origin_of(registry)
    if target[1] and (target == own or target in allowed):
        return
    shown = f"{target[0]}://{target[1]}:{target[2]}" if target[1] else "an invalid URL"
    raise RegistryError("GET", realm.split("?", 1)[0][:200], None, detail=(
        f"refusing the token endpoint {shown} named by {own[0]}://{own[1]}:{own[2]}: credentials go only to the "
        f"registry's own origin, or to an origin listed in {REALMS_SETTING}"))


def _basic_header(credential: Credential) -> str | None:
    """Build `Basic base64(user:password)` for a credential (None when anonymous)."""
    basic = credential.basic()
    if basic is None:
        return None
    redact.register_basic(*basic)
    return "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()

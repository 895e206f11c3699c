"""Verify a hand-off's Actions OIDC ID token: the configured issuer's keys only, RS256, exact audience and issuer.

GitHub's ID tokens (FACTS.md §12): `iss` is the issuer, keys are at `<issuer>/.well-known/jwks`, RS256 with a
`kid`, 5 minutes of life, and the repository's ids as JSON strings. Keys come only from the configured issuer,
never from a URL in the token (octo-sts CVE-2025-52477). Importing this module is cheap: PyJWT (with
cryptography, tens of ms) is imported by the first verification, so the routes' cold start does not pay it.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from chalicelib.registry.reference import is_loopback

if TYPE_CHECKING:
    from chalicelib.handoff.jwks import IssuerKeys

JWKS_PATH = "/.well-known/jwks"
ALGORITHMS = ["RS256"]  # the only algorithm GitHub signs ID tokens with; never taken from the token
MAX_TOKEN_CHARS = 8192  # GitHub's ID tokens are 1-2 KB
MAX_JWKS_BYTES = 64 * 1024  # GitHub's key set is a few KB
JWKS_TIMEOUT = 3.0  # seconds for the whole key-set fetch: connect, headers and body
LEEWAY = 60  # seconds of clock skew allowed on exp, nbf and iat
KEYS_LIFESPAN = 300.0  # seconds a fetched key set is used (PyJWKClient's default lifespan)
REFETCH_COOLDOWN = 30.0  # seconds between re-fetches forced by an unknown kid (PyJWKClient's default)
REQUIRED_CLAIMS = ("iss", "aud", "exp", "nbf", "iat")
MAX_KID_CHARS = 256
_ID = re.compile(r"[1-9][0-9]{0,19}")  # a GitHub database id, as a canonical decimal string


class Unverified(Exception):
    """An ID token was refused; `reason` is one line that never holds the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IssuerUnavailable(Unverified):
    """The issuer's key set could not be had (unreachable, slow, oversized, malformed): a later try may pass."""


@dataclass(frozen=True)
class Caller:
    """Who hands off, as a verified ID token says; authorize on the ids, never on names (FACTS.md §12)."""

    repository_id: int
    repository_owner_id: int
    repository: str  # names are for messages only: they are recycled after renames and deletions
    repository_owner: str
    sha: str = ""
    ref: str = ""
    workflow_ref: str = ""
    run_id: str = ""
    actor: str = ""


def jwks_url(issuer: str) -> str:
    """Return `<issuer>/.well-known/jwks`; raise ValueError unless the issuer is https:// (http:// on loopback)."""
    parts = urlsplit(issuer)
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValueError(f"OIDC_ISSUER {issuer[:100]!r} has a malformed port") from None
    if (parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment
            or parts.username is not None or parts.password is not None):
        raise ValueError(f"OIDC_ISSUER {issuer[:100]!r} is not an https:// URL without credentials, query or fragment")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(f"OIDC_ISSUER {issuer[:100]!r}: plain http:// is accepted only for loopback hosts")
    return issuer.rstrip("/") + JWKS_PATH


class Verifier:
    """Verifies ID tokens for one issuer and one audience, holding the issuer's keys for the container's life."""

    def __init__(self, issuer: str, audience: str, *, clock: Callable[[], float] = time.monotonic,
                 fetch: Callable[[str], bytes] | None = None, leeway: float = LEEWAY,
                 lifespan: float = KEYS_LIFESPAN, cooldown: float = REFETCH_COOLDOWN,
                 max_jwks_bytes: int = MAX_JWKS_BYTES, jwks_timeout: float = JWKS_TIMEOUT) -> None:
        if not audience:
            raise ValueError("HANDOFF_AUDIENCE is empty: hand-offs are off, and no token can be verified for them")
        self.jwks_url = jwks_url(issuer)
        self.issuer = issuer.rstrip("/")  # GitHub's issuers have no trailing slash; `iss` must equal this exactly
        self.audience = audience
        self.leeway = leeway
        self._clock, self._fetch = clock, fetch
        self._lifespan, self._cooldown = lifespan, cooldown
        self._max_jwks_bytes, self._jwks_timeout = max_jwks_bytes, jwks_timeout
        self._issuer_keys: IssuerKeys | None = None
        self._lock = threading.Lock()

    def verify(self, token: str) -> Caller:
        """Return the caller a valid ID token speaks for; raise Unverified (IssuerUnavailable) otherwise."""
        import jwt  # noqa: PLC0415 - imports cryptography: only a hand-off pays for it, on its first use

        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise Unverified(f"the ID token is not a string of at most {MAX_TOKEN_CHARS} characters")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unverified("the ID token is malformed") from None
        kid = header.get("kid")
        # checked before any key lookup, so a token naming no key costs no fetch
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_CHARS:
            raise Unverified("the ID token names no signing key (kid)")
        key = self._keys().get_signing_key(kid)
        try:
            # signature first, then claims; PyJWT >= 2.10.1 compares `iss` exactly (2.10.0 matched a prefix)
            claims = jwt.decode(token, key, algorithms=ALGORITHMS, audience=self.audience, issuer=self.issuer,
                                leeway=self.leeway, options={"require": list(REQUIRED_CLAIMS), "strict_aud": True})
        except jwt.PyJWTError as error:
            raise Unverified(_reason(error)) from None
        return _caller(claims)

    def _keys(self) -> IssuerKeys:
        """Return the issuer's key client, made on first use."""
        with self._lock:
            if self._issuer_keys is None:
                from chalicelib.handoff.jwks import IssuerKeys, fetch_bounded  # noqa: PLC0415 - imports PyJWT

                fetch = self._fetch or functools.partial(fetch_bounded, max_bytes=self._max_jwks_bytes,
                                                         timeout=self._jwks_timeout)
                self._issuer_keys = IssuerKeys(self.jwks_url, fetch, clock=self._clock, lifespan=self._lifespan,
                                               cooldown=self._cooldown)
            return self._issuer_keys


@functools.cache
def verifier_for(issuer: str, audience: str) -> Verifier:
    """Return this container's one verifier for the issuer and audience (its keys are cached with it)."""
    return Verifier(issuer, audience)


def _reason(error: Exception) -> str:
    """Return a fixed one-line reason for a PyJWT refusal (its own messages may quote token headers)."""
    import jwt  # noqa: PLC0415

    if isinstance(error, jwt.MissingRequiredClaimError) and error.claim in REQUIRED_CLAIMS:
        return f"the ID token has no {error.claim} claim"
    reasons: tuple[tuple[type[Exception], str], ...] = (
        (jwt.ExpiredSignatureError, "the ID token has expired"),
        (jwt.ImmatureSignatureError, "the ID token is not valid yet (nbf or iat in the future)"),
        (jwt.InvalidAudienceError, "the ID token is for another audience"),
        (jwt.InvalidIssuerError, "the ID token comes from another issuer"),
        (jwt.InvalidAlgorithmError, "the ID token is not signed with RS256"),
        (jwt.InvalidSignatureError, "the ID token's signature does not verify with the issuer's key"),
    )
    for kind, reason in reasons:
        if isinstance(error, kind):
            return reason
    return "the ID token is malformed"


def _caller(claims: Mapping[str, Any]) -> Caller:
    """Read the caller from verified claims: the ids as digit strings, the names as strings (FACTS.md §12)."""
    ids: list[int] = []
    for name in ("repository_id", "repository_owner_id"):
        value = claims.get(name)
        if not isinstance(value, str) or not _ID.fullmatch(value):
            raise Unverified(f"the ID token's {name} is not a numeric id string")
        ids.append(int(value))
    names: list[str] = []
    for name in ("repository", "repository_owner"):
        value = claims.get(name)
        if not isinstance(value, str) or not value:
            raise Unverified(f"the ID token has no {name} name")
        names.append(value)
    extras = {name: value for name in ("sha", "ref", "workflow_ref", "run_id", "actor")
              if isinstance(value := claims.get(name), str)}
    return Caller(ids[0], ids[1], names[0], names[1], **extras)

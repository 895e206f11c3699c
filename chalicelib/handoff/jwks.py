"""The issuer's signing keys: PyJWKClient over a bounded fetch of `<issuer>/.well-known/jwks`, cached per container.

Imported by the first verification only (it imports PyJWT and, through it, cryptography).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from jwt import PyJWK, PyJWKClient, PyJWTError

from chalicelib.handoff.verify import IssuerUnavailable, Unverified


def fetch_bounded(url: str, *, max_bytes: int, timeout: float) -> bytes:
    """GET `url` and return its 200 body: at most `max_bytes`, all within `timeout` seconds, no redirect followed."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + timeout
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout,
                                                 context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    expired = threading.Event()

    def cut(sock: socket.socket) -> None:
        # a socket timeout bounds each read, not their sum: a trickling answer is cut off at the deadline
        expired.set()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    watchdog: threading.Timer | None = None
    try:
        connection.connect()  # bounded by the connection's timeout
        # the socket itself: a response read to the connection's close takes it over, leaving `connection.sock` None
        watchdog = threading.Timer(deadline - time.monotonic(), cut, (connection.sock,))
        watchdog.daemon = True
        watchdog.start()
        connection.request("GET", path, headers={"Accept": "application/json", "Accept-Encoding": "identity",
                                                 "User-Agent": "ghcr2ecr"})
        response = connection.getresponse()
        if response.status != 200:
            raise IssuerUnavailable(f"the issuer's key set answered HTTP {response.status}")
        body = bytearray()
        while chunk := response.read1(16384):
            body += chunk
            if len(body) > max_bytes:
                raise IssuerUnavailable(f"the issuer's key set is over {max_bytes} bytes")
        if expired.is_set():  # an answer without a length looks complete when cut off
            raise TimeoutError
        return bytes(body)
    except (OSError, http.client.HTTPException) as error:
        if expired.is_set() or isinstance(error, TimeoutError):
            raise IssuerUnavailable(f"the issuer's key set did not arrive within {timeout:g} s") from None
        raise IssuerUnavailable(f"the issuer's key set could not be fetched ({type(error).__name__})") from None
    finally:
        if watchdog is not None:
            watchdog.cancel()
        connection.close()


class IssuerKeys(PyJWKClient):
    """The issuer's signing keys, kept `lifespan` s; an unknown kid re-fetches them at most once per `cooldown` s.

    PyJWKClient 2.15 has a lifespan and a cooldown of its own, but both run on time.monotonic, and its
    cooldown starts at every fetch (a key rotated in just after a fetch is refused until it ends). Here its
    cache is off, `fetch_data` is bounded, and both run on the injected clock; the cooldown counts only the
    re-fetches an unknown kid forces, so a flood of made-up kids costs one fetch per cooldown (FACTS.md §12).
    """

    def __init__(self, url: str, fetch: Callable[[str], bytes], *, clock: Callable[[], float] = time.monotonic,
                 lifespan: float = 300.0, cooldown: float = 30.0) -> None:
        # with its own cache off, PyJWKClient.get_signing_keys() fetches each time it is called
        super().__init__(url, cache_jwk_set=False)
        self._fetch, self._clock = fetch, clock
        self.lifespan, self.cooldown = lifespan, cooldown
        self._signing_keys: list[PyJWK] = []
        self._fetched_at: float | None = None
        self._refetched_at: float | None = None
        self._keys_lock = threading.Lock()

    def fetch_data(self) -> Any:
        """Fetch the key set through the bounded fetch and parse it (PyJWKClient's hook for subclasses)."""
        body = self._fetch(self.uri)
        try:
            return json.loads(body)
        except ValueError:
            raise IssuerUnavailable("the issuer's key set is not JSON") from None

    def get_signing_key(self, kid: str) -> PyJWK:
        """Return the issuer's key with this kid; raise Unverified when the issuer has none."""
        with self._keys_lock:
            now = self._clock()
            fetched_now = self._fetched_at is None or now - self._fetched_at >= self.lifespan
            if fetched_now:
                self._load(now)
            key = self.match_kid(self._signing_keys, kid)
            if key is None and not fetched_now and (self._refetched_at is None
                                                    or now - self._refetched_at >= self.cooldown):
                self._refetched_at = now  # also when the fetch fails: a failing issuer is not hammered either
                self._load(now)
                key = self.match_kid(self._signing_keys, kid)
            if key is None:
                raise Unverified("no key of the issuer has the ID token's kid")
            return key

    def _load(self, now: float) -> None:
        """Fetch, parse and keep the key set's signing keys."""
        try:
            keys = self.get_signing_keys()
        except PyJWTError:
            raise IssuerUnavailable("the issuer's key set holds no usable signing key") from None
        self._signing_keys, self._fetched_at = keys, now

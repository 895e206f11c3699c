"""A counting, fault-injecting HTTP/1.1 reverse proxy on loopback in front of a registry (and its token server)."""

from __future__ import annotations

import re
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Literal
from urllib.parse import urlsplit

from standins.loopback import LoopbackServer

CHUNK = 256 * 1024
UPSTREAM_TIMEOUT = 120.0
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te"})
FaultKind = Literal["status", "throttle", "drop", "corrupt", "close"]


def request_kind(path: str) -> str:
    """Classify a request path: token, ping, manifest, blob, upload, tags, catalog or other."""
    path = urlsplit(path).path
    if path.startswith("/token"):
        return "token"
    if path.rstrip("/") == "/v2":
        return "ping"
    for marker, kind in (("/blobs/uploads", "upload"), ("/manifests/", "manifest"), ("/blobs/", "blob"),
                         ("/tags/list", "tags"), ("/_catalog", "catalog")):
        if marker in path:
            return kind
    return "other"


@dataclass
class Fault:
    """One injected fault: requests matching method and path regex get it, `count` times (-1: always)."""

    kind: FaultKind
    method: str | None
    path: re.Pattern[str]
    count: int = 1
    status: int = 500
    after_bytes: int = 0
    offset: int | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        """Return whether the fault applies to this request and still has uses left."""
        return self.count != 0 and (self.method in (None, method)) and bool(self.path.search(path))


@dataclass
class Traffic:
    """What went through the proxy: requests by (method, kind), blob GET body bytes, all body bytes."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    blob_bytes: int = 0
    response_bytes: int = 0

    @property
    def total(self) -> int:
        """Return the number of requests."""
        return sum(self.requests.values())

    def count(self, kind: str | None = None, method: str | None = None) -> int:
        """Return how many requests had this kind and/or method."""
        return sum(n for (m, k), n in self.requests.items() if kind in (None, k) and method in (None, m))


class FaultProxy(LoopbackServer):
    """Forward to `upstream` keeping the Host header (so upload `Location`s route back here), injecting faults."""

    thread_name = "fault-proxy"

    def __init__(self, upstream: str, token_upstream: str | None = None) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.token_upstream = token_upstream.rstrip("/") if token_upstream else None
        self.faults: list[Fault] = []
        self.traffic = Traffic()
        self.is_down = False
        self.latency = 0.0  # seconds added before forwarding each request (bench: a distant GHCR)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """Return the proxying handler bound to this proxy."""
        return _handler_for(self)

    def stop(self) -> None:
        """Stop listening and cut every open connection (new connections are then refused)."""
        super().stop()
        self.cut_connections()

    def cut_connections(self) -> None:
        """Close every client connection currently open through the proxy."""
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _add(self, kind: FaultKind, method: str | None, path: str, count: int, **kw: object) -> Fault:
        fault = Fault(kind, method.upper() if method else None, re.compile(path), count, **kw)  # type: ignore[arg-type]
        with self._lock:
            self.faults.append(fault)
        return fault

    def fail(self, method: str | None, path: str, status: int = 500, count: int = 1) -> Fault:
        """Answer matching requests with `status` (default 500) and an error body."""
        return self._add("status", method, path, count, status=status)

    def throttle(self, method: str | None, path: str, count: int = 1) -> Fault:
        """Answer matching requests with 429 `TOOMANYREQUESTS` and `Retry-After: 1`."""
        return self._add("throttle", method, path, count, status=429)

    def drop(self, method: str | None, path: str, after_bytes: int = 0, count: int = 1) -> Fault:
        """Forward headers and the first `after_bytes` of the body, then close the connection."""
        return self._add("drop", method, path, count, after_bytes=after_bytes)

    def corrupt(self, method: str | None, path: str, offset: int | None = None, count: int = 1) -> Fault:
        """Flip one byte of the response body (at `offset`, default the middle)."""
        return self._add("corrupt", method, path, count, offset=offset)

    def hang_up(self, method: str | None, path: str, count: int = 1) -> Fault:
        """Close the connection without any response."""
        return self._add("close", method, path, count)

    def down(self) -> None:
        """Close every connection, open or new, without answering, until `up()`."""
        self.is_down = True
        self.cut_connections()

    def up(self) -> None:
        """Serve again after `down()`."""
        self.is_down = False

    def clear(self) -> None:
        """Remove every fault and bring the proxy up."""
        with self._lock:
            self.faults.clear()
        self.is_down = False

    def reset_traffic(self) -> Traffic:
        """Return the traffic so far and start counting afresh."""
        with self._lock:
            traffic, self.traffic = self.traffic, Traffic()
        return traffic

    def take_fault(self, method: str, path: str, on_response: bool = False) -> Fault | None:
        """Return the first matching fault with uses left, using one: body faults only apply to a 2xx response."""
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path) and (fault.kind in ("drop", "corrupt")) == on_response:
                    fault.count -= 1 if fault.count > 0 else 0
                    fault.hits += 1
                    return fault
        return None

    def count(self, method: str, path: str, blob_bytes: int, body_bytes: int) -> None:
        """Record one request and the body bytes sent back for it."""
        with self._lock:
            self.traffic.requests[(method, request_kind(path))] += 1
            self.traffic.blob_bytes += blob_bytes
            self.traffic.response_bytes += body_bytes

    def track(self, sock: socket.socket, add: bool) -> None:
        """Remember or forget an open client connection."""
        with self._lock:
            (self._sockets.add if add else self._sockets.discard)(sock)


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    from standins.proxy_handler import ProxyHandler

    return type("BoundProxyHandler", (ProxyHandler,), {"proxy": proxy})

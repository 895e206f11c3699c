"""The stand-ins' HTTP servers take a burst of new connections without the kernel dropping any."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler

from standins.loopback import LoopbackServer


class _Quiet(LoopbackServer):
    """A stand-in whose handler never answers (only the connection matters here)."""

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        class Handler(BaseHTTPRequestHandler):
            def handle(self) -> None:
                self.rfile.read(1)

        return Handler


def test_a_burst_of_sixty_four_connections_is_accepted_at_once() -> None:
    # The kernel completes a handshake only while the listen backlog has room; past it the SYN is dropped and
    # the client retries after 1 s. socketserver's default backlog of 5 fails this (bench/ saw 1 s stalls).
    with _Quiet() as server:
        host, port = server.host.split(":")

        def connect(_: int) -> socket.socket | None:
            try:
                return socket.create_connection((host, int(port)), timeout=0.5)
            except OSError:
                return None

        with ThreadPoolExecutor(max_workers=64) as pool:
            sockets = list(pool.map(connect, range(64)))
        try:
            assert sum(s is None for s in sockets) == 0
        finally:
            for s in sockets:
                if s is not None:
                    s.close()

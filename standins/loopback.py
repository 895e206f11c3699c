"""The lifecycle every HTTP stand-in shares: a threaded server on a free 127.0.0.1 port, in a daemon thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class _Server(ThreadingHTTPServer):
    """A threaded HTTP server whose listen backlog fits a client opening tens of connections at once.

    socketserver's default backlog is 5: a burst of new connections (a sync's metadata pool opens 16) overflows
    it, the kernel drops the SYNs, and each dropped client waits the 1 s SYN retransmission (seen in bench/).
    """

    request_queue_size = 128
    daemon_threads = True


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler speaking HTTP/1.1 (keep-alive, as registries and GitHub do) that logs nothing."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's own name
        """Stay quiet: tests and the demo print what matters themselves."""


class LoopbackServer:
    """Base of the stand-ins that answer HTTP: `start`/`stop`, a context manager, `host` and `url`."""

    thread_name = "standin"

    def __init__(self) -> None:
        self._server: _Server | None = None

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """Return the request handler class bound to this stand-in."""
        raise NotImplementedError

    @property
    def host(self) -> str:
        """Return `127.0.0.1:PORT`."""
        assert self._server is not None, f"{type(self).__name__} not started"
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        """Return `http://127.0.0.1:PORT`."""
        return f"http://{self.host}"

    def start(self) -> Self:
        """Listen on an ephemeral loopback port and serve in a daemon thread."""
        server = _Server(("127.0.0.1", 0), self.handler_class())
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.thread_name,
                         daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

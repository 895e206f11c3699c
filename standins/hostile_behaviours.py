"""Misbehaviours for `HostileRegistry.on(...)`: each answers one request the way a broken or hostile registry might.

Every one is bounded: an endless body stops when the client goes away or after `limit` bytes / `seconds`,
so a test that fails cannot leave a server thread spinning for long.
"""

from __future__ import annotations

import json
import select
import time
from collections.abc import Callable

from standins.hostile import Behaviour, HostileHandler

MB = 1024 * 1024


def _chunked(handler: HostileHandler, data: bytes) -> None:
    handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


def endless(status: int = 200, prefix: bytes = b'{"tags": ["', filler: bytes = b"a" * 65536,
            limit: int = 4096 * MB, seconds: float = 60.0, headers: dict[str, str] | None = None) -> Behaviour:
    """Answer `status` with a chunked body that never ends (until the client leaves, `limit` or `seconds`)."""

    def behave(handler: HostileHandler) -> None:
        handler.body()
        handler.send_response(status)
        for name, value in {"Content-Type": "application/json", "Transfer-Encoding": "chunked",
                            **(headers or {})}.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.close_connection = True
        sent, until = 0, time.monotonic() + seconds
        try:
            _chunked(handler, prefix)
            while sent < limit and time.monotonic() < until:
                _chunked(handler, filler)
                sent += len(filler)
        except OSError:
            pass

    return behave


def gzip_bomb(status: int = 200, seconds: float = 60.0) -> Behaviour:
    """Answer `Content-Encoding: gzip` whose few compressed bytes expand to gigabytes of zeros."""

    def behave(handler: HostileHandler) -> None:
        import zlib

        handler.body()
        handler.send_response(status)
        for name, value in {"Content-Type": "application/json", "Content-Encoding": "gzip",
                            "Transfer-Encoding": "chunked"}.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.close_connection = True
        packer, zeros, until = zlib.compressobj(9, zlib.DEFLATED, 31), bytes(MB), time.monotonic() + seconds
        try:
            _chunked(handler, packer.compress(b'{"tags": ["'))
            for _ in range(16 * 1024):  # 16 GiB once expanded
                if time.monotonic() > until:
                    break
                piece = packer.compress(zeros)
                if piece:
                    _chunked(handler, piece)
        except OSError:
            pass

    return behave


def declared(status: int, size: int, content_type: str = "application/json") -> Behaviour:
    """Answer with a Content-Length of `size` and stream that many bytes (a huge but finite answer)."""

    def behave(handler: HostileHandler) -> None:
        handler.body()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(size))
        handler.end_headers()
        handler.close_connection = True
        sent, block = 0, b'{"token": "' + b"t" * 65536
        try:
            while sent < size:
                piece = block[: min(len(block), size - sent)]
                handler.wfile.write(piece)
                sent += len(piece)
        except OSError:
            pass

    return behave


def _client_gone(handler: HostileHandler, wait: float) -> bool:
    """Wait up to `wait` seconds; True when the client closed its side meanwhile."""
    readable, _, _ = select.select([handler.connection], [], [], wait)
    if not readable:
        return False
    try:
        return handler.connection.recv(1, 0x2) == b""  # MSG_PEEK: EOF means gone
    except OSError:
        return True


def silent(seconds: float = 120.0) -> Behaviour:
    """Accept the request and never answer (until the client leaves or `seconds`)."""

    def behave(handler: HostileHandler) -> None:
        handler.close_connection = True
        until = time.monotonic() + seconds
        while time.monotonic() < until and not _client_gone(handler, 0.2):
            pass

    return behave


def drip(interval: float = 0.5, seconds: float = 120.0, status: int = 200) -> Behaviour:
    """Send headers, then one body byte every `interval` seconds (each read is quick; the whole never ends)."""

    def behave(handler: HostileHandler) -> None:
        handler.body()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.close_connection = True
        until = time.monotonic() + seconds
        try:
            _chunked(handler, b'{"tags": ["')
            while time.monotonic() < until and not _client_gone(handler, interval):
                _chunked(handler, b"a")
        except OSError:
            pass

    return behave


def echo_authorization(status: int = 400, code: str = "DENIED") -> Behaviour:
    """Answer an error whose message repeats the Authorization header received (and its decoded Basic)."""

    def behave(handler: HostileHandler) -> None:
        import base64

        handler.body()
        received = handler.headers.get("Authorization", "")
        decoded = ""
        if received.startswith("Basic "):
            decoded = base64.b64decode(received[6:]).decode(errors="replace")
        message = f"you sent {received} ({decoded})"
        handler.error(status, code, message, {"X-Echo": received})

    return behave


def challenge(realm: str | Callable[[HostileHandler], str], scheme: str = "Bearer") -> Behaviour:
    """Answer 401 with a `WWW-Authenticate` naming `realm` (a string, or computed from the request)."""

    def behave(handler: HostileHandler) -> None:
        handler.body()
        where = realm(handler) if callable(realm) else realm
        handler.error(401, "UNAUTHORIZED", "authentication required",
                      {"WWW-Authenticate": f'{scheme} realm="{where}",service="hostile"'})

    return behave


def json_answer(status: int, document: object, headers: dict[str, str] | None = None) -> Behaviour:
    """Answer a fixed JSON document."""

    def behave(handler: HostileHandler) -> None:
        handler.body()
        handler.reply(status, json.dumps(document).encode(), {"Content-Type": "application/json", **(headers or {})})

    return behave

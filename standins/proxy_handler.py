"""The request handler of `FaultProxy`: stream one request up and its response back, applying a fault."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from standins.faults import CHUNK, HOP_BY_HOP, UPSTREAM_TIMEOUT, Fault, request_kind

if TYPE_CHECKING:
    from standins.faults import FaultProxy

ERROR_CODES = {429: "TOOMANYREQUESTS", 500: "UNKNOWN", 502: "UNAVAILABLE", 503: "UNAVAILABLE"}


class ProxyHandler(BaseHTTPRequestHandler):
    """Forward one HTTP/1.1 request at a time over keep-alive connections."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in separate writes: no delayed-ACK stalls
    proxy: FaultProxy
    upstream_closes = False

    def setup(self) -> None:
        super().setup()
        self.proxy.track(self.connection, True)

    def finish(self) -> None:
        self.proxy.track(self.connection, False)
        for target in list(self.__dict__.get("upstreams", {})):
            self._drop_upstream(target)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _abort(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _request_body(self) -> Iterator[bytes]:
        length = self.headers.get("Content-Length")
        if length is not None:
            remaining = int(length)
            while remaining > 0:
                data = self.rfile.read(min(CHUNK, remaining))
                if not data:
                    raise ConnectionError("client closed the request body early")
                remaining -= len(data)
                yield data
        elif "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                yield self.rfile.read(size)
                self.rfile.readline()

    def _send_error_body(self, status: int, extra: dict[str, str]) -> None:
        body = json.dumps({"errors": [{"code": ERROR_CODES.get(status, "UNKNOWN"),
                                       "message": f"injected {status}"}]}).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", "Content-Length": str(len(body)), **extra}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _proxy(self) -> None:
        proxy, method, path = self.proxy, self.command, self.path
        if proxy.is_down:
            return self._abort()
        if proxy.latency:
            time.sleep(proxy.latency)  # a distant registry: one round trip's delay per request
        fault = proxy.take_fault(method, path)
        if fault and fault.kind == "close":
            proxy.count(method, path, 0, 0)
            return self._abort()
        if fault and fault.kind in ("status", "throttle"):
            for _ in self._request_body():
                pass
            proxy.count(method, path, 0, 0)
            extra = {"Retry-After": "1"} if fault.kind == "throttle" else {}
            return self._send_error_body(fault.status, extra)
        token_upstream = proxy.token_upstream
        target = token_upstream if request_kind(path) == "token" and token_upstream is not None else proxy.upstream
        has_body = self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers
        self.responded = False
        for attempt in (1, 2):
            conn, reused = self._upstream(target)
            try:
                self._forward(conn)
            except (ConnectionError, OSError, http.client.HTTPException):
                self._drop_upstream(target)
                # a kept-alive upstream connection may have been closed meanwhile: resend once if we can
                if reused and attempt == 1 and not has_body and not self.responded:
                    continue
                if self.responded or self.close_connection:
                    return self._abort()
                proxy.count(method, path, 0, 0)
                try:
                    return self._send_error_body(502, {})  # upstream unreachable: answer like a load balancer
                except OSError:
                    return self._abort()
            if self.close_connection or self.upstream_closes:
                self._drop_upstream(target)
            return None

    def _upstream(self, target: str) -> tuple[http.client.HTTPConnection, bool]:
        """Return this client connection's kept-alive connection to `target`, and whether it was reused."""
        pool: dict[str, http.client.HTTPConnection] = self.__dict__.setdefault("upstreams", {})
        if target in pool:
            return pool[target], True
        url = urlsplit(target)
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=UPSTREAM_TIMEOUT)
        pool[target] = conn
        return conn, False

    def _drop_upstream(self, target: str) -> None:
        """Close and forget the upstream connection to `target`."""
        conn = self.__dict__.get("upstreams", {}).pop(target, None)
        if conn is not None:
            conn.close()

    def _forward(self, conn: http.client.HTTPConnection) -> None:
        proxy, method, path, fault = self.proxy, self.command, self.path, None
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        for name, value in self.headers.items():
            # Host goes up unchanged: docker-registry builds upload Locations from it (or X-Forwarded-Host)
            if name.lower() not in HOP_BY_HOP:
                conn.putheader(name, value)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for data in self._request_body():
            conn.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        if chunked:
            conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        self.upstream_closes = response.will_close
        self.send_response_only(response.status, response.reason)
        self.responded = True
        length = response.getheader("Content-Length")
        has_body = method != "HEAD" and response.status not in (204, 304) and length != "0"
        if has_body and 200 <= response.status < 300:
            fault = proxy.take_fault(method, path, on_response=True)
        for name, value in response.getheaders():
            lower = name.lower()
            if lower in HOP_BY_HOP:
                continue
            if lower == "www-authenticate" and proxy.token_upstream:
                value = value.replace(proxy.token_upstream, proxy.url)  # keep token requests routed (and counted) here
            self.send_header(name, value)
        rechunk = has_body and length is None
        if rechunk:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = self._stream_body(response, fault, int(length) if length else None) if has_body else 0
        if not has_body:
            response.read()  # marks the (empty) response done so the upstream connection can be reused
        if rechunk and not self.close_connection:
            self.wfile.write(b"0\r\n\r\n")
        blob = sent if method == "GET" and request_kind(path) == "blob" else 0
        proxy.count(method, path, blob, sent)

    def _stream_body(self, response: http.client.HTTPResponse, fault: Fault | None, length: int | None) -> int:
        limit = fault.after_bytes if fault and fault.kind == "drop" else None
        flip = None
        if fault and fault.kind == "corrupt":
            flip = fault.offset if fault.offset is not None else (length or 2) // 2
        sent = 0
        while True:
            data = response.read(CHUNK)
            if not data:
                return sent
            if flip is not None and sent <= flip < sent + len(data):
                i = flip - sent
                data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
            if limit is not None and sent + len(data) >= limit:
                data = data[: limit - sent]
                self.wfile.write(data)
                self._abort()
                return sent + len(data)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if length is None else data)
            sent += len(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _proxy

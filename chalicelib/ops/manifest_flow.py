"""The browser half of GitHub's App manifest flow, served from 127.0.0.1.

Steps (docs.github.com: "Registering a GitHub App from a manifest"):
1. The operator's browser opens our local page, whose form POSTs `manifest` to GitHub's
   `/settings/apps/new` (or `/organizations/ORG/settings/apps/new`) with `?state=<random>`.
2. The operator confirms on GitHub; GitHub redirects the browser to the manifest's `redirect_url`
   (our `/callback`) with `?code=<one-time code>&state=<the same state>`.
3. We accept the code only if `state` matches (else the redirect did not come from our own request).
"""

from __future__ import annotations

import hmac
import html
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


class ManifestFlowError(RuntimeError):
    """The manifest flow did not yield a code (state mismatch, GitHub error, timeout)."""


class ManifestFlow:
    """A one-shot local HTTP server: the form page and the redirect target."""

    def __init__(self, manifest: dict[str, Any], new_app_url: str, port: int = 0) -> None:
        self.state = secrets.token_urlsafe(32)
        self._manifest = dict(manifest)
        self._new_app_url = new_app_url
        self._port = port
        self._done = threading.Event()
        self._code: str | None = None
        self._error: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    @property
    def redirect_url(self) -> str:
        """Return the URL GitHub sends the browser back to."""
        return f"{self.url}/callback"

    @property
    def form_action(self) -> str:
        """Return where the page posts the manifest: GitHub's new-App page with our state."""
        return f"{self._new_app_url}?{urlencode({'state': self.state})}"

    def manifest(self) -> dict[str, Any]:
        """Return the manifest as posted, with `redirect_url` pointing here."""
        return {**self._manifest, "redirect_url": self.redirect_url}

    def start(self) -> str:
        """Listen on 127.0.0.1 in a daemon thread; return the page's URL."""
        flow = self
        handler = type("Handler", (_Handler,), {"flow": flow})
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="manifest-flow", daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait(self, timeout: float) -> str:
        """Return GitHub's one-time code once the browser comes back; raise on mismatch or timeout."""
        if not self._done.wait(timeout):
            raise ManifestFlowError(
                f"no answer from GitHub within {int(timeout)} s: open {self.url} in a browser and confirm the App"
            )
        if self._error is not None:
            raise ManifestFlowError(self._error)
        assert self._code is not None
        return self._code

    # -- request handling (called from the server thread) --------------------------------------------
    def page(self) -> str:
        """Return the HTML page whose form posts the manifest to GitHub."""
        manifest = html.escape(json.dumps(self.manifest()), quote=True)
        action = html.escape(self.form_action, quote=True)
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>Create the ghcr2ecr GitHub App</title></head>"
            "<body><h1>Create the ghcr2ecr GitHub App</h1>"
            f"<form id='manifest-form' action='{action}' method='post'>"
            f"<input type='hidden' name='manifest' value='{manifest}'>"
            "<button type='submit'>Continue on GitHub</button></form>"
            "<script>document.getElementById('manifest-form').submit()</script></body></html>"
        )

    def callback(self, query: dict[str, list[str]]) -> tuple[int, str]:
        """Accept GitHub's redirect: return (HTTP status, message for the browser)."""
        if self._done.is_set():
            return 410, "This page has already been used; return to your terminal."
        state = (query.get("state") or [""])[0]
        code = (query.get("code") or [""])[0]
        if not hmac.compare_digest(state.encode(), self.state.encode()):
            self._error = "the redirect's state does not match this run's: refusing its code (run create-app again)"
            self._done.set()
            return 400, "State mismatch: this redirect did not come from the request this command made. Refused."
        if not code:
            self._error = "GitHub redirected back without a code (was the App creation cancelled?)"
            self._done.set()
            return 400, "No code in the redirect."
        self._code = code
        self._done.set()
        return 200, "GitHub App created. You can close this tab and return to your terminal."


class _Handler(BaseHTTPRequestHandler):
    flow: ManifestFlow
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the terminal is for the operator
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        split = urlsplit(self.path)
        if split.path == "/":
            status, body = 200, self.flow.page()
        elif split.path == "/callback":
            status, message = self.flow.callback(parse_qs(split.query))
            body = f"<!doctype html><html><body><p>{html.escape(message)}</p></body></html>"
        else:
            status, body = 404, "<!doctype html><html><body><p>Not found.</p></body></html>"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

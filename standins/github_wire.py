"""The GitHub stand-in's wire side: records, the HTTP handler, and GitHub-shaped JSON (see standins.github)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

DEFAULT_PERMISSIONS = {
    "packages": "read", "metadata": "read", "actions_variables": "read", "organization_actions_variables": "read",
}


class Reply(Exception):
    """An HTTP answer raised from inside a handler."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


@dataclass
class Installation:
    """One installation of the App on an account."""

    id: int
    login: str
    account_id: int
    target_type: str = "Organization"
    repositories: list[str] | None = None  # None: all repositories of the account
    permissions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PERMISSIONS))
    suspended: bool = False


@dataclass
class MintedToken:
    """An installation token the stand-in handed out."""

    value: str
    installation_id: int
    repositories: list[str] | None
    permissions: dict[str, str]
    expires: float
    revoked: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received; `auth` is the kind of credential, never its value."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    auth: str


class _Served(Protocol):
    """What the handler needs from the stand-in."""

    requests: list[RecordedRequest]
    _lock: Any

    def _fault_for(self, method: str, path: str) -> Any: ...

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any, authorization: str) -> Reply: ...


class Handler(BaseHTTPRequestHandler):
    """One request: record it (credential kind only), apply an injected fault, answer."""

    standin: _Served
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
        pass

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        authorization = self.headers.get("Authorization", "")
        query = parse_qs(split.query)
        gh = self.standin
        with gh._lock:
            gh.requests.append(RecordedRequest(self.command, split.path, query, body, auth_kind(authorization)))
        fault = gh._fault_for(self.command, split.path)
        try:
            if fault is not None:
                time.sleep(fault.delay)
                raise Reply(fault.status, {"message": fault.message}, fault.headers)
            if raw and not isinstance(body, (dict, list)):
                raise Reply(400, {"message": "Problems parsing JSON"})
            reply = gh.handle(self.command, split.path, query, body, authorization)
        except Reply as answer:
            reply = answer
        data = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout test)
            pass

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve


def auth_kind(authorization: str) -> str:
    scheme, _, value = authorization.partition(" ")
    if not authorization:
        return "none"
    if scheme.lower() == "basic":
        return "basic"
    if scheme.lower() in ("bearer", "token"):
        return "jwt" if value.count(".") == 2 and not value.startswith("ghs_") else "token"
    return "other"


def token_value(app_id: int, serial: int) -> str:
    # Variable length on purpose: classic 40-char tokens and the ~520-char ghs_<APPID>_<JWT> shape.
    if serial % 2:
        return f"ghs_{app_id}_" + ".".join(secrets.token_urlsafe(n) for n in (27, 300, 171))
    return "ghs_" + secrets.token_hex(18 + secrets.randbelow(6))


def variable_json(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}


def page(items: list[dict[str, Any]], query: dict[str, list[str]], url: str) -> Reply:
    """Paginate like GitHub: per_page (max 30, default 10), page from 1, Link rel="next"."""
    try:
        per_page = min(max(int(query.get("per_page", ["10"])[0]), 1), 30)
        page = max(int(query.get("page", ["1"])[0]), 1)
    except ValueError:
        raise Reply(422, {"message": "Invalid pagination"}) from None
    chunk = items[(page - 1) * per_page: page * per_page]
    headers = {}
    if page * per_page < len(items):
        headers["Link"] = f'<{url}?per_page={per_page}&page={page + 1}>; rel="next"'
    return Reply(200, {"total_count": len(items), "variables": chunk}, headers)


def installation_json(inst: Installation, app_id: int) -> dict[str, Any]:
    return {
        "id": inst.id, "app_id": app_id, "target_id": inst.account_id, "target_type": inst.target_type,
        "account": {"login": inst.login, "id": inst.account_id, "type": inst.target_type},
        "repository_selection": "all" if inst.repositories is None else "selected",
        "permissions": inst.permissions, "events": ["registry_package"],
        "suspended_at": "2026-01-01T00:00:00Z" if inst.suspended else None,
    }


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

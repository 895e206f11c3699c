"""The GitHub stand-in's App webhook deliveries: what GitHub recorded of each delivery, and redelivery requests.

GitHub's API (docs.github.com rest/apps/webhooks; FACTS.md §11): `GET /app/hook/deliveries` (App JWT;
`per_page` ≤ 100, default 30; newest first; `cursor` pages through the `Link` header; `status=success|failure`,
failure being 400–599) and `POST /app/hook/deliveries/{id}/attempts` (202). GitHub redelivers asynchronously;
here the test sends the requested redeliveries with `perform(send)`, which records each as a new delivery
(same guid, `redelivery: true`), as GitHub does.

Usage (through GitHubStandIn.hooks)::

    hooks.deliver(send, event, guid, body, headers, installation_id=7)  # send and record the answer
    hooks.record(guid, event, status_code=0, status="timed out")       # what GitHub recorded, directly
    hooks.attempts                                                       # [delivery id] of redelivery POSTs
    hooks.perform(send)                                                  # send what was asked; record it
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from standins.github_wire import Reply

Send = Callable[[dict[str, str], bytes], int]  # (headers, body) -> HTTP status, or 0 for no answer
MAX_PER_PAGE = 100


@dataclass
class HookDelivery:
    """One delivery as GitHub records it, and what it sent (to redeliver it)."""

    id: int
    guid: str
    event: str
    action: str | None
    status_code: int
    status: str
    delivered_at: float
    redelivery: bool = False
    installation_id: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def summary(self) -> dict[str, Any]:
        """Return the list item GitHub answers."""
        return {"id": self.id, "guid": self.guid, "delivered_at": iso(self.delivered_at), "redelivery": self.redelivery,
                "duration": 0.05, "status": self.status, "status_code": self.status_code, "event": self.event,
                "action": self.action, "installation_id": self.installation_id, "repository_id": None,
                "throttled_at": None}


def status_text(code: int) -> str:
    """Return the `status` text GitHub records with a status code (0: no answer)."""
    if code == 0:
        return "timed out"
    texts = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 413: "Payload Too Large",
             500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
    return "OK" if 200 <= code < 300 else texts.get(code, "Invalid HTTP Response")


@dataclass
class HookDeliveries:
    """Every delivery of the App's webhook, newest last; the redelivery POSTs received."""

    items: list[HookDelivery] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)  # redelivery POSTs not yet performed
    attempts_done: list[int] = field(default_factory=list)
    clock: Callable[[], float] = time.time
    _ids: Any = field(default_factory=lambda: itertools.count(90_000_001))

    def record(self, guid: str, event: str = "registry_package", *, status_code: int = 200, status: str | None = None,
               action: str | None = "published", redelivery: bool = False, installation_id: int | None = None,
               delivered_at: float | None = None, headers: dict[str, str] | None = None,
               body: bytes = b"") -> HookDelivery:
        """Record a delivery GitHub made (status_code 0: it got no answer)."""
        item = HookDelivery(next(self._ids), guid, event, action, status_code, status or status_text(status_code),
                            self.clock() if delivered_at is None else delivered_at, redelivery, installation_id,
                            dict(headers or {}), body)
        self.items.append(item)
        return item

    def deliver(self, send: Send, headers: dict[str, str], body: bytes, *, redelivery: bool = False,
                installation_id: int | None = None, action: str | None = None) -> HookDelivery:
        """Send a delivery to the webhook, as GitHub does, and record its answer."""
        code = send(headers, body)
        return self.record(headers["X-GitHub-Delivery"], headers["X-GitHub-Event"], status_code=code,
                           action=action, redelivery=redelivery, installation_id=installation_id, headers=headers,
                           body=body)

    def perform(self, send: Send) -> list[HookDelivery]:
        """Send every redelivery asked for since the last call; return what was recorded."""
        done = []
        asked, self.attempts = self.attempts, []
        for delivery_id in asked:
            original = next(d for d in self.items if d.id == delivery_id)
            code = send(original.headers, original.body)
            done.append(self.record(original.guid, original.event, status_code=code, action=original.action,
                                    redelivery=True, installation_id=original.installation_id,
                                    headers=original.headers, body=original.body))
        self.attempts_done.extend(asked)
        return done

    # -- the API ------------------------------------------------------------------------------------------
    def list(self, query: dict[str, list[str]], url: str) -> tuple[int, Any, dict[str, str]]:
        """GET /app/hook/deliveries: newest first, `per_page`, `cursor`, `status`; Link rel="next"."""
        try:
            per_page = min(max(int(query.get("per_page", ["30"])[0]), 1), MAX_PER_PAGE)
            cursor = int(query["cursor"][0]) if "cursor" in query else None
        except ValueError:
            raise Reply(422, {"message": "Invalid request"}) from None
        wanted = query.get("status", [None])[0]
        newest_first = sorted(self.items, key=lambda d: (d.delivered_at, d.id), reverse=True)
        if wanted == "success":
            newest_first = [d for d in newest_first if 200 <= d.status_code < 300]
        elif wanted == "failure":
            newest_first = [d for d in newest_first if not 200 <= d.status_code < 300]
        start = 0 if cursor is None else next((i for i, d in enumerate(newest_first) if d.id == cursor), 0)
        chunk = newest_first[start:start + per_page]
        headers = {}
        if start + per_page < len(newest_first):
            nxt: dict[str, int | str] = {"per_page": per_page, "cursor": newest_first[start + per_page].id}
            if wanted:
                nxt["status"] = wanted
            headers["Link"] = f'<{url}?{urlencode(nxt)}>; rel="next"'
        return 200, [d.summary() for d in chunk], headers

    def redeliver(self, delivery_id: str) -> tuple[int, Any, dict[str, str]]:
        """POST /app/hook/deliveries/{id}/attempts: 202 and remember it (404 for an unknown id)."""
        if not delivery_id.isdigit() or not any(d.id == int(delivery_id) for d in self.items):
            raise Reply(404, {"message": "Not Found"})
        self.attempts.append(int(delivery_id))
        return 202, {}, {}


def iso(epoch: float) -> str:
    """Render a time as GitHub does."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

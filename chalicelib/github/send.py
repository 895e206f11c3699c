"""The one sender of github_reports' requests: HTTPS with a token, bounded retries, a capped answer.

urllib, imported when a request is sent: app.py imports this module's callers, and its cold start matters.
Retried: connection errors, timeouts, 5xx and 429 (honouring a short `Retry-After`); nothing else.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.outcome.requests import ApiRequest

ATTEMPTS = 3
TIMEOUT_SECONDS = 10.0
ANSWER_LIMIT = 1024 * 1024  # bytes read from an answer; a check run is a few KB
RETRY_AFTER_CAP = 10.0  # seconds; a longer wait is not worth holding a Lambda for


@dataclass(frozen=True)
class Answer:
    """GitHub's answer: the status and the JSON body (None when empty or not JSON)."""

    status: int
    body: Any = None

    @property
    def ok(self) -> bool:
        """Tell whether GitHub accepted the request (2xx)."""
        return 200 <= self.status < 300

    def message(self) -> str:
        """Return GitHub's error message, on one line (GitHub's own text, never a credential)."""
        text = self.body.get("message", "") if isinstance(self.body, dict) else ""
        return " ".join(str(text).split())[:200]


class GitHubUnavailable(RuntimeError):
    """GitHub did not answer usefully after every attempt (connection errors, timeouts, 5xx, 429)."""


def send(api_url: str, token: str, request: ApiRequest, *, timeout: float = TIMEOUT_SECONDS,
         sleep: Callable[[float], None] | None = None) -> Answer:
    """Send one request authenticated with `token`; 4xx answers are returned, transient failures retried."""
    import urllib.error
    import urllib.request

    sleep = sleep or time.sleep
    data = None if request.body is None else json.dumps(request.body).encode()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
               "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "ghcr2ecr"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    http = urllib.request.Request(api_url.rstrip("/") + request.path, data=data, method=request.method,
                                  headers=headers)
    problem = ""
    for attempt in range(ATTEMPTS):
        try:
            with urllib.request.urlopen(http, timeout=timeout) as response:
                return Answer(response.status, _json(response.read(ANSWER_LIMIT)))
        except urllib.error.HTTPError as exc:
            answer = Answer(exc.code, _json(exc.read(ANSWER_LIMIT)))
            if exc.code < 500 and exc.code != 429:
                return answer
            problem = f"HTTP {exc.code}"
            wait = _retry_after(exc.headers.get("Retry-After"))
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            problem = type(getattr(exc, "reason", exc)).__name__
            wait = None
        if attempt + 1 < ATTEMPTS:
            sleep(wait if wait is not None else float(attempt + 1))
    raise GitHubUnavailable(f"{request.method} {request.path} at {api_url}: {problem} after {ATTEMPTS} attempts")


def _json(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


def _retry_after(value: str | None) -> float | None:
    try:
        return min(max(float(value), 0.0), RETRY_AFTER_CAP) if value else None
    except ValueError:
        return None

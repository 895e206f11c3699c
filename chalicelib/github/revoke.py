"""Revoking an installation token with the standard library: the build's `revoke-token` never loads githubkit.

`DELETE /installation/token`, authenticated with the token being revoked (FACTS.md §2, docs.github.com
rest/apps/installations#revoke-an-installation-access-token): 204 revoked; 401 already revoked or expired.
The one implementation of revocation: the build's `finally` (chalicelib/build/revoke_token.py), on_build_state
(chalicelib/build/token_cleanup.py) and dispatch (an unused token, through `GitHubApp.revoke`) all use it. The
token is never printed, and never part of an error message. urllib is imported on first use: app.py imports
this module (through token_cleanup), and its cold start matters.
"""

from __future__ import annotations

import time
from collections.abc import Callable

ATTEMPTS = 3
TIMEOUT_SECONDS = 10


def revoke(token: str, api_url: str, sleep: Callable[[float], None] | None = None,
           timeout: float = TIMEOUT_SECONDS) -> str:
    """Revoke `token`; return "revoked" or "already invalid"; raise RuntimeError after bounded retries."""
    import urllib.error
    import urllib.request

    sleep = sleep or time.sleep
    request = urllib.request.Request(
        api_url.rstrip("/") + "/installation/token",
        method="DELETE",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                 "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "ghcr2ecr"},
    )
    problem = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            sleep(float(attempt))
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                return "revoked"
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return "already invalid"
            problem = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                break
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            problem = type(getattr(exc, "reason", exc)).__name__
    raise RuntimeError(f"could not revoke the installation token at {api_url} ({problem}); it expires within 1 hour")

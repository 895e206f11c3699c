"""`ghcr2ecr revoke-token`: revoke the build's installation token (`DELETE /installation/token`).

GitHub authenticates this call with the token being revoked (FACTS.md §2, docs.github.com
rest/apps/installations#revoke-an-installation-access-token): 204 revoked; 401 already revoked or expired.
The token is never printed, and never part of an error message. The one implementation of revocation: the
build's `finally`, `on_build_state` and dispatch (an unused token, through `GitHubApp.revoke`) all use it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from chalicelib.config import setting

if TYPE_CHECKING:
    import argparse

ATTEMPTS = 3
TIMEOUT_SECONDS = 10


def revoke(token: str, api_url: str, sleep: Callable[[float], None] | None = None,
           timeout: float = TIMEOUT_SECONDS) -> str:
    """Revoke `token`; return "revoked" or "already invalid"; raise RuntimeError after bounded retries."""
    # Imported here: app.py imports this module (through token_cleanup), and its cold start matters.
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


def main(args: argparse.Namespace) -> int:
    """Revoke the build's installation token; 0 when revoked or already invalid (or none), 1 otherwise.

    That is GHCR2ECR_INSTALLATION_TOKEN when dispatch set it (a hand-off), else GHCR2ECR_SOURCE_TOKEN, except in
    a hand-off build: there the source token is the tenant job's GITHUB_TOKEN, which nobody but that job may
    revoke (DESIGN.md, "The workflow hand-off"). on_build_state applies the same rule by parameter name.
    """
    from chalicelib.build.contract import INSTALLATION_TOKEN, JOB, SOURCE_TOKEN
    from chalicelib.build.job import BuildJob, InvalidBuildJob

    token = os.environ.get(INSTALLATION_TOKEN, "").strip()
    if not token:
        try:
            ours = BuildJob.from_json(os.environ.get(JOB, "")).origin != "handoff"
        except InvalidBuildJob:
            ours = True  # no job: not a hand-off (dispatch writes GHCR2ECR_JOB into every build it starts)
        token = os.environ.get(SOURCE_TOKEN, "").strip() if ours else ""
    if not token:
        print("revoke-token: no installation token of this build to revoke", file=sys.stderr)
        return 0
    api_url = getattr(args, "github_api_url", None) or setting("GITHUB_API_URL")
    try:
        result = revoke(token, api_url)
    except RuntimeError as exc:
        print(f"revoke-token: {exc}", file=sys.stderr)
        return 1
    print(f"revoke-token: installation token {result}", file=sys.stderr)
    return 0

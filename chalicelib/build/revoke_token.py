"""`ghcr2ecr revoke-token`: revoke the build's installation token (`DELETE /installation/token`).

The revocation itself is chalicelib/github/revoke.py (the standard library's HTTP: the build never loads
githubkit); this command picks the build's token to revoke. The token is never printed.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from chalicelib.config import setting
from chalicelib.github.revoke import revoke

if TYPE_CHECKING:
    import argparse

__all__ = ["main", "revoke"]


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

"""Helpers for copy-engine tests: credentials as environment variables, fast retries, ECR tag immutability.

The registry stand-ins live in `tests/support/registry_fixtures.py`; this adds only what the engine's
tests need on top of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from chalicelib.sync import engine as sync
from chalicelib.registry.manifests import ACCEPT
from chalicelib.registry.transport import RetryPolicy
from standins.ghcr_ecr import EcrStandin, GhcrStandin

FAST_RETRY = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, max_retry_after=0.2)
_TAG_PUT = re.compile(r"^/v2/(.+)/manifests/([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")


def ghcr_env(ghcr: GhcrStandin, *, app_token: bool = True, fallback: bool = True,
             fallback_json: bool = False) -> dict[str, str]:
    """Return the source variables the build sets: installation token and/or the fallback credential.

    The stand-in's token endpoint is on a port of its own, so it is allowed by GHCR2ECR_TOKEN_REALMS
    (ghcr.io's realm is on ghcr.io itself and needs no setting).
    """
    env: dict[str, str] = {"GHCR2ECR_TOKEN_REALMS": ghcr.tokens.url}
    if app_token:
        env["GHCR2ECR_SOURCE_TOKEN"] = ghcr.app_token.password
    if fallback and fallback_json:
        env["GHCR2ECR_SOURCE_FALLBACK_TOKEN"] = json.dumps(
            {"username": ghcr.fallback.username, "accessToken": ghcr.fallback.password})
    elif fallback:
        env["GHCR2ECR_SOURCE_FALLBACK_TOKEN"] = ghcr.fallback.password
        env["GHCR2ECR_SOURCE_USERNAME"] = ghcr.fallback.username
    return env


def ecr_env(ecr: EcrStandin) -> dict[str, str]:
    """Return the destination variables for the ECR stand-in's Basic credential."""
    return {"GHCR2ECR_DEST_USERNAME": ecr.credential.username, "GHCR2ECR_DEST_PASSWORD": ecr.credential.password}


def secrets_of(ghcr: GhcrStandin, ecr: EcrStandin) -> list[str]:
    """Every password/token value a test run may hold, to assert none leaks."""
    return [ghcr.app_token.password, ghcr.fallback.password, ghcr.pusher.password, ecr.credential.password]


@dataclass
class Sleeps:
    """An injectable `sleep` that records the waits and does not wait."""

    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def run_sync(source_host: str, source_repo: str, dest_host: str, dest_repo: str, env: dict[str, str], *,
             tags: Sequence[str] = (), digest: str | None = None, all_tags: bool = False,
             tag_globs: str | None = None, signatures: bool = True, concurrency: int = 4,
             aliases: bool = False, deadline: float | None = None, budget: int = sync.desire.DEFAULT_BUDGET,
             sleep: Sleeps | None = None, **kwargs: Any) -> sync.Report:
    """Run one sync over plain HTTP between two loopback registries, with fast retries."""
    request = sync.SyncRequest.build(
        f"http://{source_host}/{source_repo}", f"http://{dest_host}/{dest_repo}", tags=tags, digest=digest,
        all_tags=all_tags, tag_globs=tag_globs, signatures=signatures, concurrency=concurrency,
        aliases=aliases, deadline=deadline, budget=budget)
    kwargs.setdefault("retry", FAST_RETRY)
    return sync.run(request, env=env, sleep=sleep or Sleeps(), **kwargs)


def dest_has(ecr: EcrStandin, repository: str, kind: str, reference: str) -> bool:
    """Tell whether the ECR stand-in has a manifest (kind "manifests") or blob (kind "blobs")."""
    auth = (ecr.credential.username, ecr.credential.password)
    response = httpx.head(f"{ecr.url}/v2/{repository}/{kind}/{reference}", auth=auth, headers={"Accept": ACCEPT})
    if response.status_code not in (200, 404):
        raise AssertionError(f"unexpected HEAD answer {response.status_code}")
    return response.status_code == 200


class ImmutableTags(httpx.BaseTransport):
    """Wraps the destination's HTTP transport to refuse, like an IMMUTABLE ECR repository, any PUT of a tag
    that already exists (even on the same digest), with ECR's TAG_INVALID answer. Counts tag PUTs."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.tag_puts: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Refuse PUTs of existing tags; pass everything else through."""
        match = _TAG_PUT.match(request.url.path)
        if request.method == "PUT" and match and not match.group(2).startswith("sha256:"):
            self.tag_puts.append(match.group(2))
            probe = httpx.Request("HEAD", request.url, headers={
                k: v for k, v in request.headers.items() if k.lower() in ("authorization", "accept")})
            probe.headers["Accept"] = ACCEPT
            for _ in range(5):  # docker-registry may answer 500 to a tag read while another tag is written
                existing = self.inner.handle_request(probe)
                existing.close()
                if existing.status_code < 500:
                    break
            if existing.status_code == 200:
                request.read()
                message = (f"The image tag '{match.group(2)}' already exists in the '{match.group(1)}' repository "
                           "and cannot be overwritten because the repository is immutable.")
                return httpx.Response(400, json={"errors": [{"code": "TAG_INVALID", "message": message}]})
        return self.inner.handle_request(request)

    def close(self) -> None:
        """Close the wrapped transport."""
        self.inner.close()

"""Amazon ECR specifics: registry credentials from GetAuthorizationToken, and CreateRepository.

boto3 honours `AWS_ENDPOINT_URL`, so the same code runs against a local moto server; setting
`GHCR2ECR_DEST_ECR=true` sends a non-ECR destination host (the local demo's registry) down this path.
"""

from __future__ import annotations

import base64
import datetime
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)
RENEW_BEFORE_SECONDS = 300  # ECR tokens last 12 h (FACTS.md §8); renew 5 minutes early


def ecr_client(region: str | None) -> Any:
    """Build a boto3 ECR client with timeouts and bounded retries."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 5, "mode": "standard"})
    return boto3.client("ecr", region_name=region, config=config)


def ecr_forced(env: Mapping[str, str]) -> bool:
    """Tell whether GHCR2ECR_DEST_ECR=true asks for the ECR path on any destination host."""
    return env.get("GHCR2ECR_DEST_ECR", "").strip().lower() in ("1", "true", "yes")


class EcrCredential:
    """Basic credentials `AWS:<password>` from GetAuthorizationToken, cached until shortly before expiry."""

    kind = "ECR GetAuthorizationToken"

    def __init__(self, client: Callable[[], Any], registry_id: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._registry_id = registry_id
        self._clock = clock
        self._cached: tuple[str, str, float] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        """Never show the cached password."""
        return f"EcrCredential(registry_id={self._registry_id!r})"

    def basic(self) -> tuple[str, str] | None:
        """Return ("AWS", password), calling GetAuthorizationToken when the cache is empty or stale."""
        with self._lock:
            if self._cached and self._cached[2] - RENEW_BEFORE_SECONDS > self._clock():
                return self._cached[0], self._cached[1]
            kwargs = {"registryIds": [self._registry_id]} if self._registry_id else {}
            data = self._client().get_authorization_token(**kwargs)["authorizationData"][0]
            username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
            expires = data.get("expiresAt")
            expiry = expires.timestamp() if isinstance(expires, datetime.datetime) else self._clock() + 3600
            self._cached = (username, password, expiry)
            return username, password


def ensure_repository(client: Any, name: str, tags: Mapping[str, str]) -> bool:
    """Create the ECR repository if missing; return True when it was created, False when it existed."""
    try:
        client.create_repository(
            repositoryName=name,
            tags=[{"Key": key, "Value": value} for key, value in tags.items()],
        )
    except client.exceptions.RepositoryAlreadyExistsException:
        return False  # an expected answer: someone (or a creation template) made it already
    log.info("created ECR repository %s", name)
    return True

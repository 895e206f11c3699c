"""Fixtures of the hand-off tests: an Actions OIDC issuer on loopback, a settable clock, a verifier for both."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib.handoff.verify import Verifier
from standins.oidc import OidcIssuer

AUDIENCE = "https://ghcr2ecr.example/api"


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    """An Actions-like OIDC issuer at `http://127.0.0.1:PORT/_services/token` (GHES-shaped, so it has a path)."""
    with OidcIssuer("/_services/token") as standin:
        yield standin


@pytest.fixture
def clock() -> Clock:
    """The verifier's clock (key-set lifespan and re-fetch cooldown); token times stay on the wall clock."""
    return Clock()


@pytest.fixture
def verifier(issuer: OidcIssuer, clock: Clock) -> Verifier:
    """A verifier for `issuer` and AUDIENCE, fetching the issuer's key set over HTTP."""
    return Verifier(issuer.issuer, AUDIENCE, clock=clock)

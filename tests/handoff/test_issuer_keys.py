"""The issuer's key set: cached, re-fetched on an unknown kid at most once per cooldown, fetched within bounds."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from chalicelib.handoff.verify import IssuerUnavailable, Unverified, Verifier
from standins.oidc import OidcIssuer
from tests.handoff.conftest import AUDIENCE, Clock


def test_the_key_set_is_fetched_once_and_then_served_from_the_cache(issuer: OidcIssuer, verifier: Verifier) -> None:
    for _ in range(3):
        verifier.verify(issuer.mint(AUDIENCE))
    assert issuer.jwks_fetches == 1


def test_the_key_set_is_fetched_again_once_its_lifespan_is_over(issuer: OidcIssuer, verifier: Verifier,
                                                                clock: Clock) -> None:
    verifier.verify(issuer.mint(AUDIENCE))
    clock.advance(299)
    verifier.verify(issuer.mint(AUDIENCE))
    assert issuer.jwks_fetches == 1
    clock.advance(2)
    verifier.verify(issuer.mint(AUDIENCE))
    assert issuer.jwks_fetches == 2


def test_an_unknown_kid_re_fetches_the_key_set_exactly_once_then_is_refused(issuer: OidcIssuer,
                                                                            verifier: Verifier) -> None:
    verifier.verify(issuer.mint(AUDIENCE))
    with pytest.raises(Unverified, match="no key of the issuer has the ID token's kid"):
        verifier.verify(issuer.mint_unknown_kid(AUDIENCE))
    assert issuer.jwks_fetches == 2


def test_an_unknown_kid_on_a_cold_verifier_costs_the_one_first_fetch(issuer: OidcIssuer, verifier: Verifier) -> None:
    with pytest.raises(Unverified, match="kid"):
        verifier.verify(issuer.mint_unknown_kid(AUDIENCE))
    assert issuer.jwks_fetches == 1


def test_a_flood_of_unknown_kids_re_fetches_at_most_once_per_cooldown(issuer: OidcIssuer, verifier: Verifier,
                                                                      clock: Clock) -> None:
    verifier.verify(issuer.mint(AUDIENCE))
    for _ in range(20):
        with pytest.raises(Unverified):
            verifier.verify(issuer.mint_unknown_kid(AUDIENCE))
    assert issuer.jwks_fetches == 2
    clock.advance(29)
    with pytest.raises(Unverified):
        verifier.verify(issuer.mint_unknown_kid(AUDIENCE))
    assert issuer.jwks_fetches == 2
    clock.advance(1)
    for _ in range(5):
        with pytest.raises(Unverified):
            verifier.verify(issuer.mint_unknown_kid(AUDIENCE))
    assert issuer.jwks_fetches == 3


def test_a_rotated_in_key_is_accepted_after_the_re_fetch(issuer: OidcIssuer, verifier: Verifier) -> None:
    verifier.verify(issuer.mint(AUDIENCE))
    issuer.rotate()
    assert verifier.verify(issuer.mint(AUDIENCE)).repository_id == 2001
    assert issuer.jwks_fetches == 2


def test_a_rotated_in_key_waits_for_the_cooldown_after_a_flood(issuer: OidcIssuer, verifier: Verifier,
                                                               clock: Clock) -> None:
    verifier.verify(issuer.mint(AUDIENCE))
    with pytest.raises(Unverified):
        verifier.verify(issuer.mint_unknown_kid(AUDIENCE))
    issuer.rotate()
    with pytest.raises(Unverified, match="kid"):
        verifier.verify(issuer.mint(AUDIENCE))
    clock.advance(30)
    assert verifier.verify(issuer.mint(AUDIENCE)).repository_owner_id == 1001


def test_a_retired_key_is_refused_once_the_key_set_is_fetched_again(issuer: OidcIssuer, verifier: Verifier,
                                                                    clock: Clock) -> None:
    old = issuer.current
    verifier.verify(issuer.mint(AUDIENCE))
    issuer.rotate()
    issuer.retire(old.kid)
    clock.advance(300)
    with pytest.raises(Unverified, match="kid"):
        verifier.verify(issuer.mint(AUDIENCE, key=old))


def test_an_oversized_key_set_is_refused(issuer: OidcIssuer, verifier: Verifier) -> None:
    issuer.jwks_padding = 64 * 1024
    with pytest.raises(IssuerUnavailable, match="over 65536 bytes"):
        verifier.verify(issuer.mint(AUDIENCE))


def test_a_key_set_just_under_the_size_bound_is_used(issuer: OidcIssuer, verifier: Verifier) -> None:
    issuer.jwks_padding = 60 * 1024
    assert verifier.verify(issuer.mint(AUDIENCE)).repository_id == 2001


def test_a_slow_key_set_is_given_up_on_within_the_timeout(issuer: OidcIssuer, clock: Clock) -> None:
    issuer.jwks_delay = 30
    verifier = Verifier(issuer.issuer, AUDIENCE, clock=clock, jwks_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(IssuerUnavailable, match="did not arrive within 0.5 s"):
        verifier.verify(issuer.mint(AUDIENCE))
    assert time.monotonic() - started < 2


def test_a_trickled_key_set_is_given_up_on_within_the_timeout(issuer: OidcIssuer, clock: Clock) -> None:
    issuer.jwks_trickle = 0.05  # a byte every 50 ms: each read is quick, the whole body would take a minute
    verifier = Verifier(issuer.issuer, AUDIENCE, clock=clock, jwks_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(IssuerUnavailable, match="did not arrive within 0.5 s"):
        verifier.verify(issuer.mint(AUDIENCE))
    assert time.monotonic() - started < 2


@pytest.fixture
def unaccepting() -> Iterator[str]:
    """Return the URL of a loopback port whose listen queue is full, so a new connection hangs in its handshake."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    for filler in fillers:
        filler.close()
    server.close()


def test_a_connection_that_is_never_accepted_is_given_up_on_within_the_timeout(
        issuer: OidcIssuer, unaccepting: str, clock: Clock) -> None:
    verifier = Verifier(unaccepting, AUDIENCE, clock=clock, jwks_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(IssuerUnavailable, match="did not arrive within 0.5 s"):
        verifier.verify(issuer.mint(AUDIENCE))
    assert time.monotonic() - started < 2


def test_a_key_set_answered_with_an_error_status_is_not_used(issuer: OidcIssuer, verifier: Verifier) -> None:
    issuer.jwks_status = 500  # with the key set as its body all the same
    with pytest.raises(IssuerUnavailable, match="HTTP 500"):
        verifier.verify(issuer.mint(AUDIENCE))


def test_an_unreachable_issuer_is_reported_as_unavailable(issuer: OidcIssuer, verifier: Verifier) -> None:
    token = issuer.mint(AUDIENCE)
    issuer.stop()
    with pytest.raises(IssuerUnavailable, match="could not be fetched"):
        verifier.verify(token)


@pytest.mark.parametrize("body", [b"<html>", b"[]", b"{}", b'{"keys": []}', b'{"keys": [{"kty": "RSA"}]}',
                                  b'{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k"}]}'])
def test_a_key_set_without_a_usable_key_is_reported_as_unavailable(issuer: OidcIssuer, clock: Clock,
                                                                   body: bytes) -> None:
    verifier = Verifier(issuer.issuer, AUDIENCE, clock=clock, fetch=lambda url: body)
    with pytest.raises(Unverified):
        verifier.verify(issuer.mint(AUDIENCE))


def test_a_failed_fetch_is_tried_again_by_the_next_verification(issuer: OidcIssuer, verifier: Verifier) -> None:
    issuer.jwks_status = 503
    with pytest.raises(IssuerUnavailable):
        verifier.verify(issuer.mint(AUDIENCE))
    issuer.jwks_status = 200
    assert verifier.verify(issuer.mint(AUDIENCE)).repository_id == 2001


def test_a_failed_re_fetch_still_counts_against_the_cooldown(issuer: OidcIssuer, verifier: Verifier) -> None:
    verifier.verify(issuer.mint(AUDIENCE))
    issuer.jwks_status = 503
    with pytest.raises(IssuerUnavailable):
        verifier.verify(issuer.mint_unknown_kid(AUDIENCE))
    with pytest.raises(Unverified, match="kid"):
        verifier.verify(issuer.mint_unknown_kid(AUDIENCE))
    assert issuer.jwks_fetches == 2

"""A hand-off's ID token is accepted only when GitHub's rules hold (FACTS.md §12), against a real issuer over HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest

from chalicelib.handoff.verify import Caller, Unverified, Verifier, verifier_for
from standins.oidc import OMIT, Job, OidcIssuer
from tests.handoff.conftest import AUDIENCE, Clock


def refusal(verifier: Verifier, token: str) -> str:
    """Return the reason the verifier refuses `token` with (failing the test when it accepts it)."""
    with pytest.raises(Unverified) as refused:
        verifier.verify(token)
    assert token not in str(refused.value) and token not in repr(refused.value)
    return refused.value.reason


def test_a_valid_token_passes_and_names_the_repository_by_its_ids(issuer: OidcIssuer, verifier: Verifier) -> None:
    issuer.job = Job(repository="Octo-Org/App", repository_id=2001, repository_owner_id=1001, run_id=77)
    caller = verifier.verify(issuer.mint(AUDIENCE))
    assert caller == Caller(repository_id=2001, repository_owner_id=1001, repository="Octo-Org/App",
                            repository_owner="Octo-Org", sha=issuer.job.sha, ref="refs/heads/main",
                            workflow_ref="Octo-Org/App/.github/workflows/release.yml@refs/heads/main", run_id="77",
                            actor="octocat")


def test_a_token_for_another_audience_is_refused(issuer: OidcIssuer, verifier: Verifier) -> None:
    assert refusal(verifier, issuer.mint("https://other.example/api")) == "the ID token is for another audience"


def test_a_token_whose_audience_is_a_list_holding_ours_is_refused(issuer: OidcIssuer, verifier: Verifier) -> None:
    # GitHub's aud is one string; a list is not what GitHub mints
    token = issuer.mint(AUDIENCE, aud=[AUDIENCE, "https://other.example/api"])
    assert refusal(verifier, token) == "the ID token is for another audience"


def test_an_expired_token_is_refused(issuer: OidcIssuer, verifier: Verifier) -> None:
    assert refusal(verifier, issuer.mint_expired(AUDIENCE)) == "the ID token has expired"


def test_a_token_expired_within_the_clock_skew_leeway_still_passes(issuer: OidcIssuer, verifier: Verifier) -> None:
    token = issuer.mint(AUDIENCE, now=int(time.time()) - 330)  # exp 30 s ago: within the 60 s leeway
    assert verifier.verify(token).repository_id == 2001


def test_a_token_not_yet_valid_is_refused(issuer: OidcIssuer, verifier: Verifier) -> None:
    assert refusal(verifier, issuer.mint_not_yet_valid(AUDIENCE)).startswith("the ID token is not valid yet")


def test_a_token_issued_in_the_future_is_refused_even_with_a_past_nbf(issuer: OidcIssuer, verifier: Verifier) -> None:
    token = issuer.mint(AUDIENCE, now=int(time.time()) + 600)  # nbf = iat - 600 = now; iat 10 min ahead
    assert refusal(verifier, token).startswith("the ID token is not valid yet")


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat", "iss", "aud"])
def test_a_token_without_a_time_issuer_or_audience_claim_is_refused(issuer: OidcIssuer, verifier: Verifier,
                                                                     claim: str) -> None:
    token = issuer.mint(AUDIENCE, **{claim: OMIT})
    assert refusal(verifier, token) == f"the ID token has no {claim} claim"


def test_an_unsigned_alg_none_token_is_refused(issuer: OidcIssuer, verifier: Verifier) -> None:
    assert refusal(verifier, issuer.mint_alg_none(AUDIENCE)) == "the ID token is not signed with RS256"


def test_an_hs256_token_signed_with_the_issuers_public_key_is_refused(issuer: OidcIssuer, verifier: Verifier) -> None:
    assert refusal(verifier, issuer.mint_hs256_public_key(AUDIENCE)) == "the ID token is not signed with RS256"


def test_a_token_of_another_algorithm_is_refused_even_when_the_issuer_publishes_its_key(
        issuer: OidcIssuer, verifier: Verifier) -> None:
    rs512 = issuer.add_key(alg="RS512")
    assert refusal(verifier, issuer.mint(AUDIENCE, key=rs512)) == "the ID token is not signed with RS256"


def test_a_token_with_an_unknown_critical_header_is_refused(issuer: OidcIssuer, verifier: Verifier) -> None:
    # PyJWT accepted unknown `crit` extensions before 2.12.0 (CVE-2026-32597)
    token = issuer.mint(AUDIENCE, headers={"crit": ["x-policy"], "x-policy": "strict"})
    assert refusal(verifier, token) == "the ID token is malformed"


def test_a_valid_signature_by_a_key_outside_the_key_set_under_a_known_kid_is_refused(
        issuer: OidcIssuer, verifier: Verifier) -> None:
    assert (refusal(verifier, issuer.mint_by_outsider(AUDIENCE))
            == "the ID token's signature does not verify with the issuer's key")


@pytest.mark.parametrize("suffix", ["-evil", "/x", "/", ".evil.example", "%2f.."])
def test_an_issuer_that_only_starts_like_the_configured_one_is_refused(issuer: OidcIssuer, verifier: Verifier,
                                                                        suffix: str) -> None:
    # PyJWT 2.10.0 matched `iss` as a prefix (FACTS.md §12)
    token = issuer.mint(AUDIENCE, iss=issuer.issuer + suffix)
    assert refusal(verifier, token) == "the ID token comes from another issuer"


def test_an_issuer_the_configured_one_only_starts_with_is_refused(issuer: OidcIssuer, clock: Clock) -> None:
    # an enterprise's own issuer is `<issuer>/<slug>` (FACTS.md §12): the bare issuer is another one
    enterprise = Verifier(issuer.issuer + "/octo-enterprise", AUDIENCE, clock=clock,
                          fetch=lambda url: _body_of(issuer))
    assert refusal(enterprise, issuer.mint(AUDIENCE)) == "the ID token comes from another issuer"


def _body_of(issuer: OidcIssuer) -> bytes:
    """Return the issuer's key set as its JWKS URL serves it."""
    return json.dumps(issuer.jwks()).encode()


@pytest.mark.parametrize("claim", ["repository_id", "repository_owner_id"])
@pytest.mark.parametrize("value", [OMIT, None, 2001, "", "20a1", "-1", "0", "02001", " 2001", "2001\n", "２００１",
                                   "1" * 21, ["2001"]])
def test_a_missing_non_string_or_non_digit_id_is_refused(issuer: OidcIssuer, verifier: Verifier, claim: str,
                                                         value: Any) -> None:
    token = issuer.mint(AUDIENCE, **{claim: value})
    assert refusal(verifier, token) == f"the ID token's {claim} is not a numeric id string"


@pytest.mark.parametrize("claim", ["repository", "repository_owner"])
@pytest.mark.parametrize("value", [OMIT, None, "", 7, {"name": "app"}])
def test_a_missing_or_non_string_repository_name_is_refused(issuer: OidcIssuer, verifier: Verifier, claim: str,
                                                            value: Any) -> None:
    token = issuer.mint(AUDIENCE, **{claim: value})
    assert refusal(verifier, token) == f"the ID token has no {claim} name"


def test_a_token_naming_no_key_is_refused_without_fetching_keys(issuer: OidcIssuer, verifier: Verifier) -> None:
    token = jwt.encode(issuer.claims(AUDIENCE), issuer.current.private_key, algorithm="RS256")  # no kid
    assert refusal(verifier, token) == "the ID token names no signing key (kid)"
    assert issuer.jwks_fetches == 0


@pytest.mark.parametrize("kid", ["", "k" * 257])
def test_a_token_with_an_empty_or_overlong_kid_is_refused_without_fetching_keys(
        issuer: OidcIssuer, verifier: Verifier, kid: str) -> None:
    assert refusal(verifier, issuer.mint(AUDIENCE, headers={"kid": kid})) == "the ID token names no signing key (kid)"
    assert issuer.jwks_fetches == 0


def test_an_oversized_token_is_refused_without_fetching_keys(issuer: OidcIssuer, verifier: Verifier) -> None:
    token = issuer.mint(AUDIENCE, padding="x" * 8192)
    assert refusal(verifier, token) == "the ID token is not a string of at most 8192 characters"
    assert issuer.jwks_fetches == 0


@pytest.mark.parametrize("token", [None, b"a.b.c", 5])
def test_a_token_that_is_not_a_string_is_refused(verifier: Verifier, token: Any) -> None:
    with pytest.raises(Unverified, match="not a string"):
        verifier.verify(token)


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "e30.e30.", "a.b.c.d.e", "Bearer x.y.z"])
def test_a_malformed_token_is_refused_without_fetching_keys(issuer: OidcIssuer, verifier: Verifier,
                                                            token: str) -> None:
    with pytest.raises(Unverified):
        verifier.verify(token)
    assert issuer.jwks_fetches == 0


def test_no_refusal_reason_quotes_the_token_or_its_header(issuer: OidcIssuer, verifier: Verifier) -> None:
    kid = "kid-" + "q" * 40
    hostile = [issuer.mint("https://other.example/api", kid=kid), issuer.mint_unknown_kid(AUDIENCE, kid=kid),
               issuer.mint_alg_none(AUDIENCE), issuer.mint_hs256_public_key(AUDIENCE),
               issuer.mint(AUDIENCE, headers={"crit": ["q" * 40]}), issuer.mint(AUDIENCE, iss="q" * 40)]
    for token in hostile:
        reason = refusal(verifier, token)
        assert "\n" not in reason and "q" * 40 not in reason
        assert not any(part and part in reason for part in token.split("."))


def test_keys_come_only_from_the_configured_issuer_never_from_the_token(issuer: OidcIssuer, clock: Clock) -> None:
    asked: list[str] = []

    def fetch(url: str) -> bytes:
        asked.append(url)
        return _body_of(issuer)

    verifier = Verifier(issuer.issuer, AUDIENCE, clock=clock, fetch=fetch)
    with OidcIssuer() as other:
        token = other.mint(AUDIENCE, headers={"jku": other.jwks_url, "x5u": other.jwks_url})
        assert refusal(verifier, token) == "no key of the issuer has the ID token's kid"
        assert other.jwks_fetches == 0
    assert asked == [issuer.issuer + "/.well-known/jwks"]


@pytest.mark.parametrize("configured", ["http://token.example", "ftp://127.0.0.1", "https://", "https://u:p@token.example",
                                        "https://token.example?x=1", "https://token.example#f", "http://10.0.0.1:8080",
                                        "https://token.example:99999", "token.actions.githubusercontent.com"])
def test_an_issuer_that_is_not_https_or_loopback_http_is_refused_at_start(configured: str) -> None:
    with pytest.raises(ValueError, match="OIDC_ISSUER"):
        Verifier(configured, AUDIENCE)


@pytest.mark.parametrize("configured", ["https://token.actions.githubusercontent.com", "https://ghes.example/_services/token",
                                        "http://127.0.0.1:8080", "http://localhost:8080/x", "http://[::1]:8080"])
def test_https_and_loopback_http_issuers_are_accepted(configured: str) -> None:
    assert Verifier(configured, AUDIENCE).jwks_url == configured + "/.well-known/jwks"


def test_a_configured_issuers_trailing_slash_is_ignored(issuer: OidcIssuer, clock: Clock) -> None:
    verifier = Verifier(issuer.issuer + "/", AUDIENCE, clock=clock)
    assert verifier.jwks_url == issuer.jwks_url
    assert verifier.verify(issuer.mint(AUDIENCE)).repository_id == 2001


def test_a_container_keeps_one_verifier_per_issuer_and_audience() -> None:
    first = verifier_for("https://token.actions.githubusercontent.com", AUDIENCE)
    assert verifier_for("https://token.actions.githubusercontent.com", AUDIENCE) is first
    assert verifier_for("https://token.actions.githubusercontent.com", AUDIENCE + "/v2") is not first


def test_a_verifier_needs_an_audience() -> None:
    with pytest.raises(ValueError, match="HANDOFF_AUDIENCE"):
        Verifier("https://token.actions.githubusercontent.com", "")

"""The OIDC issuer stand-in hands a job its ID tokens the way the Actions runtime does (FACTS.md §12)."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import jwt

from chalicelib.handoff.verify import Verifier
from standins.oidc import Job, OidcIssuer
from tests.handoff.conftest import AUDIENCE, Clock


def request_id_token(env: dict[str, str], audience: str | None, token: str | None = None) -> httpx.Response:
    """Ask for an ID token as actions/toolkit's getIDToken does: `<URL>&audience=<aud>` with the request token."""
    url = env["ACTIONS_ID_TOKEN_REQUEST_URL"] + (f"&audience={quote(audience, safe='')}" if audience else "")
    bearer = env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] if token is None else token
    return httpx.get(url, headers={"Authorization": f"Bearer {bearer}"})


def test_the_id_token_endpoint_mints_for_the_requested_audience_and_the_jobs_repository(
        issuer: OidcIssuer, clock: Clock) -> None:
    issuer.job = Job(repository="octo-org/tool", repository_id=4242, repository_owner_id=1001)
    env = issuer.actions_env()
    assert "?" in env["ACTIONS_ID_TOKEN_REQUEST_URL"]  # the URL already has a query string
    answer = request_id_token(env, AUDIENCE)
    assert answer.status_code == 200
    caller = Verifier(issuer.issuer, AUDIENCE, clock=clock).verify(answer.json()["value"])
    assert (caller.repository_id, caller.repository_owner_id, caller.repository) == (4242, 1001, "octo-org/tool")
    assert [(r.audience, r.status) for r in issuer.id_token_requests] == [(AUDIENCE, 200)]


def test_the_id_token_endpoint_refuses_a_wrong_or_missing_request_token(issuer: OidcIssuer) -> None:
    env = issuer.actions_env()
    assert request_id_token(env, AUDIENCE, token="idreq_wrong").status_code == 401
    assert httpx.get(env["ACTIONS_ID_TOKEN_REQUEST_URL"] + "&audience=x").status_code == 401
    assert issuer.minted == [] and [r.status for r in issuer.id_token_requests] == [401, 401]


def test_without_an_audience_the_id_token_is_for_the_owners_url(issuer: OidcIssuer) -> None:
    answer = request_id_token(issuer.actions_env(), None)
    claims = jwt.decode(answer.json()["value"], options={"verify_signature": False})
    assert claims["aud"] == "https://github.com/octo-org"


def test_honest_tokens_look_like_githubs(issuer: OidcIssuer) -> None:
    token = issuer.mint(AUDIENCE)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert jwt.get_unverified_header(token) == {"typ": "JWT", "alg": "RS256", "kid": issuer.current.kid}
    assert claims["exp"] - claims["iat"] == 300 and claims["iat"] - claims["nbf"] == 600
    assert claims["iss"] == issuer.issuer and claims["aud"] == AUDIENCE
    assert all(isinstance(claims[name], str) for name in ("repository_id", "repository_owner_id", "run_id", "actor_id"))
    assert {key["kid"] for key in httpx.get(issuer.jwks_url).json()["keys"]} == set(issuer.keys)
    assert issuer.outsider.kid not in issuer.keys

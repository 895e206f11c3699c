"""Credentials and the WWW-Authenticate handshake, at the HTTP boundary (httpx.MockTransport)."""

from __future__ import annotations

import base64
import datetime
import logging
import time
from collections.abc import Callable

import httpx
import pytest

from chalicelib.registry.auth import (
    ANONYMOUS,
    Authenticator,
    allowed_realms,
    origin_of,
    StaticCredential,
    parse_challenge,
    parse_fallback_credential,
    source_credentials,
)
from chalicelib.registry.ecr import EcrCredential
from chalicelib.registry.errors import AccessDenied, RegistryError
from chalicelib.registry.reference import Repository
from chalicelib.registry.transport import RetryPolicy, Transport

REPO = Repository(host="ghcr.test", name="octo/app")
SECRET_APP = "ghs_app_SECRET_VALUE_1"
SECRET_PAT = "ghp_pat_SECRET_VALUE_2"
CHALLENGE = 'Bearer realm="https://ghcr.test/token",service="ghcr.test",scope="repository:octo/app:pull"'
Handler = Callable[[httpx.Request], httpx.Response]


def _user(request: httpx.Request) -> str | None:
    """Return the Basic username a request carries, if any."""
    header = request.headers.get("authorization", "")
    if not header.startswith("Basic "):
        return None
    return base64.b64decode(header[6:]).decode().split(":", 1)[0]


def _password(request: httpx.Request) -> str | None:
    """Return the Basic password a request carries, if any."""
    header = request.headers.get("authorization", "")
    return base64.b64decode(header[6:]).decode().split(":", 1)[1] if header.startswith("Basic ") else None


def fake_ghcr(allowed_password: str | None, log: list[str]) -> Handler:
    """A GHCR-like registry: tokens for anyone, but only `allowed_password` gets pull on octo/app."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            password = _password(request)
            log.append(f"token:{password is not None and password[:7]}:{request.url.params.get_list('scope')}")
            grant = "good" if password == allowed_password else "none"
            return httpx.Response(200, json={"token": f"tok-{grant}", "expires_in": 300})
        log.append(f"{request.method} {request.url.path} {request.headers.get('authorization', '-')[:12]}")
        if request.headers.get("authorization") == "Bearer tok-good":
            return httpx.Response(200, json={"tags": ["v1"]})
        if request.headers.get("authorization", "").startswith("Bearer"):
            return httpx.Response(403, json={"errors": [{"code": "DENIED", "message": "denied"}]})
        return httpx.Response(401, headers={"WWW-Authenticate": CHALLENGE},
                              json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})

    return handle


def transport_for(handler: Handler, credentials: list, repo: Repository = REPO, realms: str = "") -> Transport:
    """Build a Transport over a MockTransport with no real sleeping (`realms`: GHCR2ECR_TOKEN_REALMS)."""
    client = httpx.Client(transport=httpx.MockTransport(handler))
    allowed = allowed_realms({"GHCR2ECR_TOKEN_REALMS": realms})
    return Transport(repo, Authenticator(credentials, realms=allowed), role="source", hint="give a read credential",
                     client=client, retry=RetryPolicy(attempts=3), sleep=lambda s: None)


def chain() -> list:
    """Installation token, anonymous, fallback: the source order."""
    return [StaticCredential("installation token", "x-access-token", SECRET_APP), ANONYMOUS,
            StaticCredential("fallback token", "reader", SECRET_PAT)]


def test_bearer_handshake_fetches_a_pull_token_with_basic_credentials_and_retries() -> None:
    log: list[str] = []
    transport = transport_for(fake_ghcr(SECRET_APP, log), chain())
    response = transport.request("GET", "/v2/octo/app/tags/list", scopes=[("octo/app", "pull")])
    assert response.status_code == 200
    assert log[1] == "token:ghs_app:['repository:octo/app:pull']"
    assert log[2].endswith("Bearer tok-g")


def test_a_token_is_reused_for_the_same_scope() -> None:
    log: list[str] = []
    transport = transport_for(fake_ghcr(SECRET_APP, log), chain())
    for _ in range(3):
        transport.request("GET", "/v2/octo/app/tags/list", scopes=[("octo/app", "pull")])
    assert sum(entry.startswith("token:") for entry in log) == 1


def test_a_denied_credential_moves_down_the_chain_to_the_fallback() -> None:
    log: list[str] = []
    transport = transport_for(fake_ghcr(SECRET_PAT, log), chain())
    response = transport.request("GET", "/v2/octo/app/tags/list", scopes=[("octo/app", "pull")])
    assert response.status_code == 200
    assert transport.auth.tried() == ["installation token", "anonymous", "fallback token"]
    assert [e for e in log if e.startswith("token:")] == [
        "token:ghs_app:['repository:octo/app:pull']",
        "token:False:['repository:octo/app:pull']",
        "token:ghp_pat:['repository:octo/app:pull']",
    ]


def test_when_every_credential_is_denied_the_error_names_package_and_kinds_but_no_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    transport = transport_for(fake_ghcr("nobody-has-this", []), chain())
    with pytest.raises(AccessDenied) as caught:
        transport.request("GET", "/v2/octo/app/manifests/v1", scopes=[("octo/app", "pull")])
    message = str(caught.value)
    assert "ghcr.test/octo/app" in message
    assert "installation token, anonymous, fallback token" in message
    assert "give a read credential" in message
    assert "\n" not in message
    for secret in (SECRET_APP, SECRET_PAT, "tok-none"):
        assert secret not in message
        assert secret not in caplog.text
        assert secret not in repr(caught.value.__dict__)


def test_a_token_endpoint_refusal_counts_as_denied() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            if _user(request) == "reader":
                return httpx.Response(200, json={"access_token": "tok-good"})
            return httpx.Response(401, json={"errors": [{"code": "UNAUTHORIZED", "message": "bad creds"}]})
        if request.headers.get("authorization") == "Bearer tok-good":
            return httpx.Response(200)
        return httpx.Response(401, headers={"WWW-Authenticate": CHALLENGE})

    transport = transport_for(handle, [StaticCredential("installation token", "x", SECRET_APP),
                                       StaticCredential("fallback token", "reader", SECRET_PAT)])
    assert transport.request("GET", "/v2/", scopes=[("octo/app", "pull")]).status_code == 200
    assert transport.auth.tried()[-1] == "fallback token"


def test_basic_challenges_are_answered_with_the_credential_on_every_later_request() -> None:
    seen: list[str | None] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        if _password(request) == "ecr-pass":
            return httpx.Response(200)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="ecr"'})

    transport = transport_for(handle, [StaticCredential("destination password", "AWS", "ecr-pass")])
    transport.request("HEAD", "/v2/octo/app/blobs/sha256:00", scopes=[("octo/app", "pull,push")])
    transport.request("HEAD", "/v2/octo/app/blobs/sha256:01", scopes=[("octo/app", "pull,push")])
    assert seen[0] is None and seen[1] == seen[2] and seen[2] is not None and seen[2].startswith("Basic ")


def test_pull_and_push_scopes_are_requested_separately() -> None:
    scopes: list[list[str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            scopes.append(request.url.params.get_list("scope"))
            return httpx.Response(200, json={"token": "t" + str(len(scopes))})
        if request.headers.get("authorization", "").startswith("Bearer"):
            return httpx.Response(200)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://ghcr.test/token"'})

    transport = transport_for(handle, [ANONYMOUS])
    transport.request("GET", "/v2/", scopes=[("dst", "pull,push"), ("src", "pull")])
    assert scopes == [["repository:dst:pull,push", "repository:src:pull"]]


def test_challenge_parameters_are_parsed_with_quotes_and_commas() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://r/token",service="registry.docker.io",scope="repository:a/b:pull,push",error=x'
    )
    assert scheme == "bearer"
    assert params == {"realm": "https://r/token", "service": "registry.docker.io",
                      "scope": "repository:a/b:pull,push", "error": "x"}


def test_source_credentials_follow_the_design_order_and_ignore_blank_values() -> None:
    env = {"GHCR2ECR_SOURCE_TOKEN": "ghs_x", "GHCR2ECR_SOURCE_FALLBACK_TOKEN": "  ",
           "GHCR2ECR_SOURCE_USERNAME": "octocat"}
    assert [c.kind for c in source_credentials(env)] == ["installation token", "anonymous"]
    env["GHCR2ECR_SOURCE_FALLBACK_TOKEN"] = "ghp_y"
    fallback = source_credentials(env)[-1]
    assert fallback.basic() == ("octocat", "ghp_y")
    assert [c.kind for c in source_credentials({})] == ["anonymous"]


def test_the_fallback_may_be_the_pull_through_cache_json_shape() -> None:
    credential = parse_fallback_credential('{"username": "bot", "accessToken": "ghp_z"}', "x-access-token")
    assert credential.basic() == ("bot", "ghp_z")
    assert "ghp_z" not in repr(credential)
    with pytest.raises(ValueError, match="accessToken"):
        parse_fallback_credential('{"username": "bot"}', "x")
    with pytest.raises(ValueError, match="does not parse"):
        parse_fallback_credential('{"username": ', "x")


class FakeEcr:
    """Answers GetAuthorizationToken like ECR, counting calls."""

    def __init__(self, expires_in: float) -> None:
        self.calls: list[dict] = []
        self.expires_in = expires_in

    def get_authorization_token(self, **kwargs: object) -> dict:
        self.calls.append(dict(kwargs))
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=self.expires_in)
        token = base64.b64encode(f"AWS:pw{len(self.calls)}".encode()).decode()
        return {"authorizationData": [{"authorizationToken": token, "expiresAt": expires}]}


def test_ecr_credentials_come_from_get_authorization_token_and_are_cached_until_expiry() -> None:
    fake = FakeEcr(expires_in=12 * 3600)
    credential = EcrCredential(lambda: fake, registry_id="123456789012")
    assert credential.basic() == ("AWS", "pw1")
    assert credential.basic() == ("AWS", "pw1")
    assert fake.calls == [{"registryIds": ["123456789012"]}]
    assert "pw1" not in repr(credential)


def test_an_ecr_token_about_to_expire_is_renewed() -> None:
    fake = FakeEcr(expires_in=60)
    credential = EcrCredential(lambda: fake)
    credential.basic()
    assert credential.basic() == ("AWS", "pw2")
    assert fake.calls == [{}, {}]


def test_the_credential_never_goes_to_another_origin() -> None:
    seen: dict[str, str | None] = {}

    def handle(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] = request.headers.get("authorization")
        if request.url.host == "ghcr.test" and "authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        return httpx.Response(204)

    transport = transport_for(handle, [StaticCredential("fallback token", "u", SECRET_PAT)])
    transport.request("GET", "/v2/", scopes=[("octo/app", "pull")])
    transport.request("PUT", "https://storage.test/upload?x=1", scopes=[("octo/app", "pull,push")], content=b"x")
    assert seen["ghcr.test"] is not None and seen["storage.test"] is None


def _realm_registry(realm: str, seen: list[str]) -> Handler:
    """A registry that challenges with `realm`; records every host asked."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.scheme}://{request.url.netloc.decode()}{request.url.path}")
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": "tok"})
        if request.headers.get("authorization") == "Bearer tok":
            return httpx.Response(200)
        return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'})

    return handle


@pytest.mark.parametrize(("registry", "realm"), [
    (REPO, "http://auth.test/token"),                                      # plain http to a remote host
    (Repository(host="127.0.0.1:5000", name="octo/app", scheme="http"), "http://10.0.0.8/token"),
    (REPO, "http://127.0.0.1:8080/token"),                                 # a remote registry naming loopback
    (REPO, "ftp://ghcr.test/token"),
    (REPO, "https://auth.test/token"),                                     # another host, not allowed
    (REPO, "http://ghcr.test/token"),                                      # the registry's host, downgraded
    (REPO, "https://ghcr.test:8443/token"),                                # the registry's host, another port
    (Repository(host="127.0.0.1:5000", name="octo/app", scheme="http"), "http://127.0.0.1:5001/token"),
    (Repository(host="[::1]:5000", name="octo/app", scheme="http"), "http://[::1]:5001/token"),
])
def test_credentials_go_to_no_realm_outside_the_registrys_origin(registry: Repository, realm: str) -> None:
    seen: list[str] = []
    transport = transport_for(_realm_registry(realm, seen), [StaticCredential("fallback token", "u", SECRET_PAT)],
                              registry)
    with pytest.raises(RegistryError, match="token endpoint") as caught:
        transport.request("GET", "/v2/", scopes=[("octo/app", "pull")])
    assert not any(url.startswith(realm.split("/token")[0]) for url in seen[1:]) and len(seen) == 1
    assert SECRET_PAT not in str(caught.value)


@pytest.mark.parametrize(("registry", "realm", "allowed"), [
    (REPO, "https://ghcr.test/token", ""),                                  # the registry's own origin
    (REPO, "https://GHCR.test:443/token", ""),                              # the same origin, spelled otherwise
    (Repository(host="127.0.0.1:5000", name="octo/app", scheme="http"), "http://127.0.0.1:5000/token", ""),
    (REPO, "https://auth.test/token", "https://auth.test"),                 # an origin the operator allows
    (Repository(host="127.0.0.1:5000", name="octo/app", scheme="http"), "http://127.0.0.1:5001/token",
     "https://auth.test, http://127.0.0.1:5001"),
    (Repository(host="[::1]:5000", name="octo/app", scheme="http"), "http://[::1]:5001/token", "http://[::1]:5001"),
])
def test_the_registrys_own_realm_and_allowed_origins_are_used(registry: Repository, realm: str, allowed: str) -> None:
    seen: list[str] = []
    transport = transport_for(_realm_registry(realm, seen), [StaticCredential("fallback token", "u", SECRET_PAT)],
                              registry, allowed)
    assert transport.request("GET", "/v2/", scopes=[("octo/app", "pull")]).status_code == 200
    assert origin_of(seen[1]) == origin_of(realm) and seen[1].endswith("/token")


@pytest.mark.parametrize("value", ["http://auth.test", "ftp://x.test", "not a url", "https://"])
def test_a_malformed_or_plain_http_allowed_realm_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="GHCR2ECR_TOKEN_REALMS"):
        allowed_realms({"GHCR2ECR_TOKEN_REALMS": value})


def test_an_expiry_already_past_is_kept_for_a_minute_not_asked_again_at_every_request() -> None:
    fake = FakeEcr(expires_in=-3600)  # moto answers expiresAt=2015-01-01 for every token
    now = [time.time()]
    credential = EcrCredential(lambda: fake, clock=lambda: now[0])
    assert credential.basic() == credential.basic() == ("AWS", "pw1")
    now[0] += 61
    assert credential.basic() == ("AWS", "pw2")


def test_credentials_sharing_a_client_share_its_login() -> None:
    fake = FakeEcr(expires_in=12 * 3600)
    first, second = EcrCredential(lambda: fake), EcrCredential(lambda: fake)
    assert first.basic() == second.basic() == ("AWS", "pw1")
    assert EcrCredential(lambda: FakeEcr(expires_in=12 * 3600)).basic() == ("AWS", "pw1")  # another client: its own
    assert len(fake.calls) == 1


def test_a_hand_off_builds_first_source_credential_is_named_the_workflow_job_token_and_both_tokens_are_secret() -> None:
    from chalicelib.registry.auth import secret_values, source_credentials

    env = {"GHCR2ECR_SOURCE_TOKEN": "ghs_job", "GHCR2ECR_INSTALLATION_TOKEN": "ghs_installation"}
    assert [c.kind for c in source_credentials(env)] == ["workflow job token", "anonymous"]
    assert set(secret_values(env)) == {"ghs_job", "ghs_installation"}

"""A hostile registry cannot take a credential: realms must be the registry's origin, echoed secrets are masked."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from standins import images
from standins.hostile import HostileHandler, HostileRegistry
from standins.hostile_behaviours import echo_authorization
from tests.support.child_sync import ChildRun, run_child_sync

pytestmark = pytest.mark.timeout(60)
SOURCE_TOKEN = "ghs_SECRETXYZ0123456789abcdefSOURCE"
FALLBACK = "ghp_SECRETXYZ0123456789abcdefFALLBACK"
DEST_PASSWORD = "dest-SECRETXYZ-0123456789"
ENV = {"GHCR2ECR_REQUEST_DEADLINE": "2", "GHCR2ECR_REQUEST_GIVE_UP": "4", "GHCR2ECR_SOURCE_TOKEN": SOURCE_TOKEN,
       "GHCR2ECR_SOURCE_FALLBACK_TOKEN": FALLBACK, "GHCR2ECR_DEST_USERNAME": "pusher",
       "GHCR2ECR_DEST_PASSWORD": DEST_PASSWORD}
IMAGE = images.single_image(seed="hostile-secrets")


def _encodings(username: str, secret: str) -> list[str]:
    """Every form a credential travels in: raw, `user:secret`, Basic base64 (padded or not)."""
    pair = f"{username}:{secret}"
    encoded = base64.b64encode(pair.encode()).decode()
    return [secret, pair, encoded, encoded.rstrip("=")]


def _leaks(run: ChildRun, *servers: HostileRegistry) -> list[str]:
    """Return every credential form (and every bearer token the servers issued) found in the run's output."""
    forms = (_encodings("x-access-token", SOURCE_TOKEN) + _encodings("x-access-token", FALLBACK)
             + _encodings("pusher", DEST_PASSWORD) + [t for s in servers for t in s.tokens])
    return [form for form in forms if form in run.text]


@pytest.fixture
def dest() -> Iterator[HostileRegistry]:
    """A destination asking for Basic auth, echoing the Authorization it gets in every error."""
    with HostileRegistry("dst/app") as server:
        yield server


def _basic_then_echo(handler: HostileHandler) -> None:
    if handler.command == "HEAD":  # a HEAD answer has no body to echo in: the blob is missing
        return handler.reply(404)
    if "Authorization" not in handler.headers:
        handler.body()
        return handler.error(401, "UNAUTHORIZED", "login", {"WWW-Authenticate": 'Basic realm="dst"'})
    return echo_authorization(400, "DENIED")(handler)


@pytest.mark.parametrize("where", ["token endpoint", "manifest", "destination"])
def test_an_echoed_credential_is_masked_in_stderr_and_the_report(dest: HostileRegistry, tmp_path: Path,
        where: str) -> None:
    with HostileRegistry("octo/app", token_auth=True).serve(IMAGE, ["v1"]) as source:
        if where == "token endpoint":
            source.on("GET", "^/token", echo_authorization(400, "BAD"))
        elif where == "manifest":
            source.on("GET", "/manifests/", lambda h: echo_authorization(400, "BAD")(h) if h.authorized()
                      else h.ask_token())
        else:
            dest.on(None, "^/v2/dst/", _basic_then_echo)
        run = run_child_sync([f"http://{source.host}/octo/app", f"http://{dest.host}/dst/app", "--tag", "v1"],
                             ENV, tmp_path)
        echoed = source.authorizations() + dest.authorizations()
    print(run.lines[-1])
    assert echoed, "the hostile registry saw no credential: the test proves nothing"
    assert run.code == 1 and "<redacted>" in run.lines[-1]
    assert run.report["errors"] and all("<redacted>" in e for e in run.report["errors"] if "you sent" in e)
    assert _leaks(run, source) == [], run.text


def test_a_listed_tag_that_repeats_a_token_is_masked(dest: HostileRegistry, tmp_path: Path) -> None:
    with HostileRegistry("octo/app", token_auth=True).serve(IMAGE, ["v1", f"Bearer {SOURCE_TOKEN}"]) as source:
        run = run_child_sync([f"http://{source.host}/octo/app", f"http://{dest.host}/dst/app", "--all-tags"],
                             {**ENV, "GHCR2ECR_DEST_PASSWORD": ""}, tmp_path)
    assert run.code == 0, run.lines
    assert any("outside the tag grammar" in w and "<redacted>" in w for w in run.report["warnings"])
    assert _leaks(run, source) == []


@pytest.mark.parametrize("realm", ["other-port", "other-scheme"])
def test_a_realm_off_the_registrys_origin_gets_no_credential(dest: HostileRegistry, tmp_path: Path,
        realm: str) -> None:
    with HostileRegistry("octo/app") as other:
        target = f"{other.url}/token" if realm == "other-port" else f"https://{other.host}/token"
        with HostileRegistry("octo/app", token_auth=True, realm=target).serve(IMAGE, ["v1"]) as source:
            run = run_child_sync([f"http://{source.host}/octo/app", f"http://{dest.host}/dst/app", "--tag", "v1"],
                                 ENV, tmp_path)
    print(run.lines[-1])
    assert other.requests == [] and source.token_logins == []
    assert run.code == 1 and "refusing the token endpoint" in run.lines[-1]
    assert "GHCR2ECR_TOKEN_REALMS" in run.lines[-1]
    assert _leaks(run, source) == []


def test_an_operator_may_allow_another_token_origin(dest: HostileRegistry, tmp_path: Path) -> None:
    with HostileRegistry("octo/app") as other:
        with HostileRegistry("octo/app", token_auth=True, realm=f"{other.url}/token").serve(IMAGE, ["v1"]) as source:
            other.tokens = source.tokens  # the allowed token service issues tokens the registry accepts
            run = run_child_sync([f"http://{source.host}/octo/app", f"http://{dest.host}/dst/app", "--tag", "v1"],
                                 {**ENV, "GHCR2ECR_DEST_PASSWORD": "", "GHCR2ECR_TOKEN_REALMS": other.url}, tmp_path)
    assert run.code == 0, run.lines
    assert [s.path.split("?")[0] for s in other.requests] == ["/token"]
    assert other.token_logins == [f"x-access-token:{SOURCE_TOKEN}"] and source.token_logins == []
    assert any(s.headers.get("authorization", "").startswith("Basic ") for s in other.requests)

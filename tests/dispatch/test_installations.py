"""The App's GitHub side: configuration from Actions variables, token minting, variables, revocation."""

from __future__ import annotations

import pytest
from githubkit.exception import RequestFailed

from chalicelib.dispatch.settings import InstallationConfig, InvalidConfig, config_from_variables
from chalicelib.github.app import GitHubApp, InstallationToken, InstallationUnavailable
from standins.github import GitHubStandIn
from tests.support.app_fixtures import APP_ID


@pytest.fixture
def app(github: GitHubStandIn) -> GitHubApp:
    """The App client against the stand-in."""
    return GitHubApp(str(APP_ID), github.private_key_pem, github.url)


def test_no_variables_means_the_defaults() -> None:
    assert config_from_variables({}) == InstallationConfig(enabled=True, tags=None, repository=None, signatures=True)
    assert config_from_variables({}).tags is None and config_from_variables({}).handoff == "allow"


def test_variable_names_are_case_insensitive_and_values_validated() -> None:
    config = config_from_variables({"ghcr2ecr_enabled": " True ", "Ghcr2ecr_Tags": "v*,!*-rc*",
                                    "GHCR2ECR_REPOSITORY": "mirrors/app", "GHCR2ECR_SIGNATURES": "false"})
    assert config.enabled and not config.signatures and config.repository == "mirrors/app"
    assert config.tags is not None
    assert config.tags.matches("v1.0") and not config.tags.matches("v1.0-rc1") and not config.tags.matches("latest")


@pytest.mark.parametrize("value,mode", [("allow", "allow"), (" Only ", "only"), ("DENY", "deny")])
def test_ghcr2ecr_handoff_is_allow_only_or_deny(value: str, mode: str) -> None:
    assert config_from_variables({"GHCR2ECR_HANDOFF": value}).handoff == mode


def test_an_unknown_ghcr2ecr_handoff_names_the_variable() -> None:
    with pytest.raises(InvalidConfig, match="GHCR2ECR_HANDOFF") as raised:
        config_from_variables({"GHCR2ECR_HANDOFF": "sometimes"})
    assert raised.value.variable == "GHCR2ECR_HANDOFF"


@pytest.mark.parametrize("variables,named", [
    ({"GHCR2ECR_ENABLED": "no"}, "GHCR2ECR_ENABLED"),
    ({"GHCR2ECR_SIGNATURES": ""}, "GHCR2ECR_SIGNATURES"),
    ({"GHCR2ECR_TAGS": "(a|b)*"}, "GHCR2ECR_TAGS"),
    ({"GHCR2ECR_REPOSITORY": "../x"}, "GHCR2ECR_REPOSITORY"),
])
def test_an_invalid_value_is_refused_naming_the_variable(variables: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidConfig, match=named) as caught:
        config_from_variables(variables)
    assert caught.value.variable == named


def test_unknown_ghcr2ecr_names_are_reported_not_fatal() -> None:
    assert config_from_variables({"GHCR2ECR_TAG": "v*", "OTHER": "x"}).unknown == ("GHCR2ECR_TAG",)


def test_minting_sends_the_permissions_githubkit_would_drop(app: GitHubApp, github: GitHubStandIn) -> None:
    github.add_installation(5, "org5", 55)
    token = app.mint_token(5, ["repo"], {"actions_variables": "read", "organization_actions_variables": "read"})
    assert github.requests[-1].body == {"repositories": ["repo"], "permissions": {
        "actions_variables": "read", "organization_actions_variables": "read"}}
    assert github.requests[-1].auth == "jwt"
    assert github.token(token.value) is not None
    assert token.value not in repr(token)


def test_tokens_of_any_length_are_accepted(app: GitHubApp, github: GitHubStandIn) -> None:
    github.add_installation(5, "org5", 55)
    lengths = {len(app.mint_token(5, None, {"packages": "read"}).value) for _ in range(4)}
    assert len(lengths) > 1 and max(lengths) > 500  # classic ~40 chars and ghs_<APPID>_<JWT> ~520 chars


@pytest.mark.parametrize("change,code", [("missing", "installation_gone"), ("suspended", "installation_suspended")])
def test_an_unavailable_installation_is_a_permanent_error(app: GitHubApp, github: GitHubStandIn,
                                                          change: str, code: str) -> None:
    if change == "suspended":
        github.add_installation(5, "org5", 55, suspended=True)
    with pytest.raises(InstallationUnavailable) as caught:
        app.mint_token(5, None, {"packages": "read"})
    assert caught.value.code == code


def test_a_permission_the_installation_lacks_is_refused(app: GitHubApp, github: GitHubStandIn) -> None:
    github.add_installation(5, "org5", 55, permissions={"packages": "read", "metadata": "read"})
    with pytest.raises(InstallationUnavailable, match="permissions") as caught:
        app.mint_token(5, None, {"packages": "read", "actions_variables": "read"})
    assert caught.value.code == "token_refused"


def test_a_wrong_app_key_is_not_mistaken_for_a_gone_installation(github: GitHubStandIn) -> None:
    other = GitHubStandIn(app_id=APP_ID)  # a different key pair
    app = GitHubApp(str(APP_ID), other.private_key_pem, github.url)
    with pytest.raises(RequestFailed) as caught:  # raised as is: transient for dispatch, never "gone"
        app.mint_token(77, None, {"packages": "read"})
    assert caught.value.response.status_code == 401


def test_variables_without_the_permission_are_a_permanent_error(app: GitHubApp, github: GitHubStandIn) -> None:
    token = app.mint_token(77, ["app"], {"packages": "read"})
    with pytest.raises(InstallationUnavailable) as caught:
        app.variables(token, "octo-org", "app", True)
    assert caught.value.code == "variables_unreadable"


def test_revoking_uses_the_token_itself_and_tolerates_a_second_time(app: GitHubApp, github: GitHubStandIn) -> None:
    token = app.mint_token(77, None, {"packages": "read"})
    assert app.revoke(token) == "revoked"
    assert app.revoke(token) == "already invalid"  # 401 the second time: already revoked is fine
    minted = github.token(token.value)
    assert minted is not None and minted.revoked
    assert [r.auth for r in github.requests if r.method == "DELETE"] == ["token", "token"]


def test_revocation_is_implemented_once_and_light_to_import(app: GitHubApp, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    from chalicelib.github import revoke

    calls: list[tuple[str, str]] = []

    def record(token: str, api_url: str, **_: object) -> str:
        calls.append((token, api_url))
        return "revoked"

    monkeypatch.setattr(revoke, "revoke", record)
    app.revoke(InstallationToken("ghs_x", ""))
    assert calls == [("ghs_x", app.api_url)]  # the App revokes through revoke.revoke, as the build does
    # app.py imports revoke (through token_cleanup): urllib.request waits until a token is revoked.
    code = "import sys, chalicelib.build.revoke_token; print('urllib.request' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"


RATE_LIMITS = [  # what GitHub answers when a limit is hit (rest/using-the-rest-api/rate-limits-for-the-rest-api)
    {"status": 403, "message": "You have exceeded a secondary rate limit", "headers": {"Retry-After": "30"}},
    {"status": 403, "message": "You have exceeded a secondary rate limit. Please wait a few minutes."},
    {"status": 403, "message": "API rate limit exceeded for installation ID 77.",
     "headers": {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"}},
    {"status": 429, "message": "Too many requests", "headers": {"Retry-After": "1"}},
    {"status": 429, "message": "Too many requests"},
]


@pytest.mark.parametrize("limit", RATE_LIMITS)
def test_a_rate_limited_variables_read_is_transient(app: GitHubApp, github: GitHubStandIn,
                                                    limit: dict) -> None:
    token = app.mint_token(77, ["app"], {"actions_variables": "read"})
    github.inject("/repos/octo-org/app/actions/*", **limit)
    with pytest.raises(RequestFailed) as caught:  # raised as is: SQS redelivers the message
        app.variables(token, "octo-org", "app", True)
    assert caught.value.response.status_code == limit["status"]


@pytest.mark.parametrize("limit", RATE_LIMITS)
def test_a_rate_limited_mint_is_transient(app: GitHubApp, github: GitHubStandIn, limit: dict) -> None:
    github.inject("/app/installations/77/access_tokens", **limit)
    with pytest.raises(RequestFailed) as caught:
        app.mint_token(77, None, {"packages": "read"})
    assert caught.value.response.status_code == limit["status"]


def test_ghcr2ecr_checks_turns_the_check_run_off_and_an_invalid_value_names_it() -> None:
    assert config_from_variables({}).checks is True
    assert config_from_variables({"ghcr2ecr_checks": "FALSE"}).checks is False
    assert "GHCR2ECR_CHECKS" not in config_from_variables({"GHCR2ECR_CHECKS": "true"}).unknown
    with pytest.raises(InvalidConfig, match="GHCR2ECR_CHECKS") as caught:
        config_from_variables({"GHCR2ECR_CHECKS": "no"})
    assert caught.value.variable == "GHCR2ECR_CHECKS"

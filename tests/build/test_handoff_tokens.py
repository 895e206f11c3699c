"""A hand-off build's two tokens: its installation token is revoked; the tenant job's token never is, by the build's
`revoke-token` step or by on_build_state's cleanup, however the build's variables look (DESIGN.md, hand-off)."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.build import revoke_token as revoke
from chalicelib.build import token_cleanup
from chalicelib.build.contract import INSTALLATION_TOKEN, JOB, SOURCE_TOKEN
from chalicelib.build.job import BuildJob, Target
from chalicelib.github.app import GitHubApp
from chalicelib.jobs import Selection
from standins.github import GitHubStandIn
from tests.support.app_fixtures import AppEnv

JOB_TOKEN = "ghs_the_tenant_jobs_own_token_0123456789"
TARGET = Target(package="octo-org/app", source="ghcr.io/octo-org/app", dest="registry.test/ghcr/octo-org/app",
                owner_id=1001, repository="app", tags=None, signatures=True)


def job(origin: str) -> str:
    """GHCR2ECR_JOB of a one-package build of `origin`."""
    selection = Selection("sha256:" + "c" * 64, None if origin == "handoff" else "v1")
    return BuildJob(origin, "f" * 32, 9, "octo-org", selection, (TARGET,)).to_json()


def args(github: GitHubStandIn) -> Any:
    """revoke-token's parsed arguments."""
    return type("Args", (), {"github_api_url": github.url})()


def deletes(github: GitHubStandIn) -> int:
    """Return how many DELETE /installation/token the stand-in received (it records no credential's value)."""
    return len([r for r in github.requests if r.method == "DELETE" and r.path == "/installation/token"])


@pytest.fixture
def installation_token(github: GitHubStandIn) -> str:
    """A real installation token of installation 9."""
    github.add_installation(9, "octo-org", 1001)
    app = GitHubApp(str(github.app_id), github.private_key_pem, github.url)
    return app.mint_token(9, None, {"packages": "read"}).value


def test_a_hand_off_builds_revoke_step_revokes_its_installation_token_and_not_the_jobs(
        github: GitHubStandIn, installation_token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JOB, job("handoff"))
    monkeypatch.setenv(SOURCE_TOKEN, JOB_TOKEN)
    monkeypatch.setenv(INSTALLATION_TOKEN, installation_token)
    assert revoke.main(args(github)) == 0
    minted = github.token(installation_token)
    assert deletes(github) == 1 and minted is not None and minted.revoked  # the one DELETE carried this token


def test_a_hand_off_build_without_its_installation_token_revokes_nothing(
        github: GitHubStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JOB, job("handoff"))
    monkeypatch.setenv(SOURCE_TOKEN, JOB_TOKEN)
    monkeypatch.delenv(INSTALLATION_TOKEN, raising=False)
    assert revoke.main(args(github)) == 0
    assert deletes(github) == 0


def test_an_event_builds_revoke_step_still_revokes_its_source_token(
        github: GitHubStandIn, installation_token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JOB, job("webhook"))
    monkeypatch.setenv(SOURCE_TOKEN, installation_token)
    monkeypatch.delenv(INSTALLATION_TOKEN, raising=False)
    assert revoke.main(args(github)) == 0
    minted = github.token(installation_token)
    assert deletes(github) == 1 and minted is not None and minted.revoked


def test_the_cleanup_never_revokes_a_job_tokens_parameter_even_outside_a_hand_off_build(
        app_env: AppEnv) -> None:
    ssm = app_env.boto("ssm")
    parameter = "/ghcr2ecr/tokens/handoff/" + "f" * 32
    ssm.put_parameter(Name=parameter, Value=JOB_TOKEN, Type="SecureString")
    cleanup = token_cleanup.revoke_and_delete(parameter)
    assert (cleanup.revoked, cleanup.deleted) == ("not ours", True)
    assert deletes(app_env.github) == 0
    assert app_env.token_parameters() == []

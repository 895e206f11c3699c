"""Deployment settings: ECR_CREATE_REPOSITORIES reaches the build; the operator guide states the caching."""

from __future__ import annotations

import pytest

from chalicelib.config import ConfigError, Settings
from tests.support.app_fixtures import AppEnv, clear_caches, dispatch_queued, load_delivery, post

REQUIRED = {"GITHUB_APP_ID": "1", "SYNC_QUEUE_URL": "https://sqs.example/1/q.fifo", "CODEBUILD_PROJECT": "p"}


@pytest.mark.parametrize("value,expected", [(None, True), ("", True), ("true", True), (" TRUE ", True),
                                            ("false", False), ("False", False)])
def test_repository_creation_is_on_unless_turned_off(value: str | None, expected: bool) -> None:
    env = REQUIRED if value is None else {**REQUIRED, "ECR_CREATE_REPOSITORIES": value}
    assert Settings.from_env(env).create_repositories is expected


@pytest.mark.parametrize("value", ["no", "0", "off"])
def test_an_unusable_create_repositories_value_names_the_setting(value: str) -> None:
    with pytest.raises(ConfigError, match="ECR_CREATE_REPOSITORIES"):
        Settings.from_env({**REQUIRED, "ECR_CREATE_REPOSITORIES": value})


@pytest.mark.parametrize("value,passed", [("false", "false"), ("true", "true")])
def test_the_setting_reaches_the_build_as_plaintext(client, app_env: AppEnv, monkeypatch, value: str,
                                                    passed: str) -> None:
    monkeypatch.setenv("ECR_CREATE_REPOSITORIES", value)
    clear_caches()  # settings are read once per container
    from chalicelib import aws

    aws.use(aws.CodeBuild, app_env.codebuild)
    aws.use(aws.Sqs, app_env.sqs)
    assert post(client, load_delivery("multiplatform-tagged-index")).status_code == 202
    dispatch_queued(client, app_env)
    assert app_env.build_job().create_repository is (passed == "true")


def test_the_operator_guide_states_how_long_the_key_and_the_secret_are_cached() -> None:
    from pathlib import Path

    from chalicelib.github.client import KEY_MAX_AGE
    from chalicelib.webhook.edge import SECRET_MAX_AGE

    guide = " ".join((Path(__file__).resolve().parents[2] / "docs" / "operators.md").read_text().split())
    assert f"private key for up to {KEY_MAX_AGE // 60} minutes (`dispatch`)" in guide
    assert f"webhook secret for up to {SECRET_MAX_AGE // 60} minutes (the webhook)" in guide
    assert f"cached ≤ {KEY_MAX_AGE // 60} min" in guide and f"cached ≤ {SECRET_MAX_AGE // 60} min" in guide
    assert "up to an hour" not in guide and "within an hour;" not in guide and "≤ 1 h" not in guide
    assert "never with a bare `chalice deploy --stage STAGE`" in guide  # app.py falls back to dev's names

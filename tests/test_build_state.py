"""on_build_state: every final state deletes the build's token parameter and logs one outcome line."""

from __future__ import annotations

import pytest

from chalicelib.build_state import FINAL_STATES, event_pattern
from tests.support.app_fixtures import PROJECT, TOKEN_PREFIX, AppEnv, build_state_event, dispatch_queued, \
    load_delivery, post


def started_build(client, env: AppEnv) -> list[dict[str, str]]:
    """Run webhook + dispatch for the tagged index; return the build's environment variables."""
    assert post(client, load_delivery("multiplatform-tagged-index")).status_code == 202
    dispatch_queued(client, env)
    assert len(env.token_parameters()) == 1
    return env.codebuild.calls[-1]["variables"]


@pytest.mark.parametrize("status", FINAL_STATES)
def test_every_final_state_deletes_the_token_parameter(client, app_env: AppEnv, json_logs, status: str) -> None:
    variables = started_build(client, app_env)
    client.lambda_.invoke("on_build_state", build_state_event(client, variables, status))
    assert app_env.token_parameters() == []
    [line] = json_logs.find("build finished")
    assert line["status"] == status and line["token_parameter_deleted"] is True
    assert line["installation"] == "77" and line["package"] == "ghcr.io/octo-org/app" and line["tag"] == "v1.2.3"
    assert line["digest"].startswith("sha256:") and line["duration_seconds"] == 7.0
    assert line["level"] == ("INFO" if status == "SUCCEEDED" else "ERROR")


def test_an_in_progress_event_changes_nothing(client, app_env: AppEnv, json_logs) -> None:
    variables = started_build(client, app_env)
    client.lambda_.invoke("on_build_state", build_state_event(client, variables, "IN_PROGRESS"))
    assert len(app_env.token_parameters()) == 1
    assert json_logs.find("build finished") == []


def test_a_second_event_for_the_same_build_is_harmless(client, app_env: AppEnv, json_logs) -> None:
    variables = started_build(client, app_env)
    event = build_state_event(client, variables, "FAILED")
    client.lambda_.invoke("on_build_state", event)
    client.lambda_.invoke("on_build_state", event)
    assert [line["token_parameter_deleted"] for line in json_logs.find("build finished")] == [True, False]


def test_a_parameter_outside_the_token_prefix_is_never_deleted(client, app_env: AppEnv) -> None:
    app_env.boto("ssm").put_parameter(Name="/ghcr2ecr/github/other", Value="x", Type="SecureString")
    for name in ("/ghcr2ecr/github/other", TOKEN_PREFIX + "../github/other", TOKEN_PREFIX):
        variables = [{"name": "GHCR2ECR_SOURCE_TOKEN", "value": name, "type": "PARAMETER_STORE"}]
        client.lambda_.invoke("on_build_state", build_state_event(client, variables, "SUCCEEDED"))
    ssm = app_env.boto("ssm")
    assert ssm.get_parameter(Name="/ghcr2ecr/github/other", WithDecryption=True)["Parameter"]["Value"] == "x"


def test_a_plaintext_variable_named_like_the_token_is_not_trusted(client, app_env: AppEnv) -> None:
    variables = started_build(client, app_env)
    forged = [{**v, "type": "PLAINTEXT"} if v["name"] == "GHCR2ECR_SOURCE_TOKEN" else v for v in variables]
    client.lambda_.invoke("on_build_state", build_state_event(client, forged, "SUCCEEDED"))
    assert len(app_env.token_parameters()) == 1


def test_duration_falls_back_to_start_and_event_time(client, app_env: AppEnv, json_logs) -> None:
    event = build_state_event(client, [], "STOPPED")
    del event["detail"]["additional-information"]["phases"]
    event["time"] = "2026-11-24T23:01:30Z"
    client.lambda_.invoke("on_build_state", event)
    [line] = json_logs.find("build finished")
    assert line["duration_seconds"] == 90.0


def test_the_rule_matches_final_states_of_the_copy_project_only() -> None:
    pattern = event_pattern(PROJECT)
    assert pattern["source"] == ["aws.codebuild"]
    assert pattern["detail-type"] == ["CodeBuild Build State Change"]
    assert pattern["detail"] == {"project-name": [PROJECT], "build-status": list(FINAL_STATES)}
    assert "IN_PROGRESS" not in FINAL_STATES

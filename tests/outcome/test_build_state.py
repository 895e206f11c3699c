"""on_build_state: every final state deletes the build's token parameter and logs one outcome line."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from chalice.app import Rate, ScheduledEventConfig

from chalicelib.build.contract import FINAL_STATES, event_pattern
from tests.support.app_fixtures import PROJECT, QUEUE_NAME, TOKEN_PREFIX, AppEnv, build_state_event, dispatch_queued, \
    load_delivery, post


def started_build(client, env: AppEnv) -> list[dict[str, str]]:
    """Run webhook + dispatch for the tagged index; return the build's environment variables."""
    assert post(client, load_delivery("multiplatform-tagged-index")).status_code == 202
    dispatch_queued(client, env)
    assert len(env.token_parameters()) == 1
    return env.codebuild.calls[-1]["variables"]


@pytest.mark.parametrize("status", FINAL_STATES)
def test_every_final_state_revokes_the_token_and_deletes_its_parameter(client, app_env: AppEnv, json_logs,
                                                                       status: str) -> None:
    variables = started_build(client, app_env)
    client.lambda_.invoke("on_build_state", build_state_event(client, variables, status))
    assert app_env.token_parameters() == []
    assert [t.revoked for t in app_env.github.tokens] == [True]  # the build may have died before `finally`
    [line] = json_logs.find("build finished")
    assert line["status"] == status and line["token_parameter_deleted"] is True
    assert line["token_revoked"] == "revoked"
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
    assert [line["token_revoked"] for line in json_logs.find("build finished")] == ["revoked", "absent"]


def test_a_later_attempt_of_the_same_request_keeps_its_own_parameter(client, app_env: AppEnv) -> None:
    variables = started_build(client, app_env)
    [message] = app_env.sqs.sent
    # The same request dispatched again (past CodeBuild's idempotency window): a second token, a second build.
    client.lambda_.invoke("dispatch", client.events.generate_sqs_event([message["body"]], queue_name=QUEUE_NAME))
    later = app_env.codebuild.variables()["GHCR2ECR_SOURCE_TOKEN"][1]
    client.lambda_.invoke("on_build_state", build_state_event(client, variables, "SUCCEEDED"))
    assert app_env.token_parameters() == [later]
    assert [t.revoked for t in app_env.github.tokens] == [True, False]


def test_a_token_the_build_already_revoked_is_fine(client, app_env: AppEnv, json_logs) -> None:
    variables = started_build(client, app_env)
    from chalicelib.build import revoke_token as revoke

    revoke.revoke(app_env.github.tokens[0].value, app_env.github.url)  # the buildspec's `finally`
    client.lambda_.invoke("on_build_state", build_state_event(client, variables, "SUCCEEDED"))
    [line] = json_logs.find("build finished")
    assert line["token_revoked"] == "already invalid" and line["token_parameter_deleted"] is True


def test_when_github_cannot_revoke_the_parameter_is_kept_for_the_sweep(client, app_env: AppEnv, json_logs,
                                                                       monkeypatch) -> None:
    from chalicelib.github import revoke

    monkeypatch.setattr(revoke.time, "sleep", lambda _s: None)
    variables = started_build(client, app_env)
    app_env.github.inject("/installation/token", status=502, count=3)
    client.lambda_.invoke("on_build_state", build_state_event(client, variables, "FAILED"))
    [line] = json_logs.find("build finished")
    assert line["token_revoked"] == "failed" and line["token_parameter_deleted"] is False
    assert len(app_env.token_parameters()) == 1
    assert app_env.github.tokens[0].value not in json_logs.text()


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
    event = build_state_event(client, [], "STOPPED", started=datetime(2026, 11, 24, 23, 0, tzinfo=timezone.utc))
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


class DecryptionRecorder:
    """Wraps the SSM client: records WithDecryption of every read, so a test can tell what was decrypted."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.decrypted: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def get_paginator(self, name: str) -> Any:
        paginator, seen = self.client.get_paginator(name), self.decrypted

        class Recording:
            def paginate(self, **kwargs: Any) -> Any:
                seen.append(kwargs.get("WithDecryption", False))
                return paginator.paginate(**kwargs)

        return Recording()


def test_the_sweep_deletes_token_parameters_older_than_a_token_without_decrypting_or_calling_github(
        client, app_env: AppEnv, json_logs) -> None:
    from chalicelib import aws
    from chalicelib.build import token_cleanup

    started_build(client, app_env)  # a build whose state change never came
    ssm = app_env.boto("ssm")
    ssm.put_parameter(Name="/ghcr2ecr/other", Value="not a token", Type="SecureString")
    recorder = DecryptionRecorder(ssm)
    aws.use(aws.Ssm, aws.Ssm(recorder))
    now = datetime.now(timezone.utc)
    assert token_cleanup.sweep(now + timedelta(minutes=50)) == []  # younger than a token: maybe a running build
    [parameter] = app_env.token_parameters()
    assert token_cleanup.sweep(now + timedelta(minutes=70)) == [parameter]
    assert app_env.token_parameters() == [] and recorder.decrypted == [False, False]
    assert not [r for r in app_env.github.requests if r.path == "/installation/token"]  # expired: nothing to revoke
    assert ssm.get_parameter(Name="/ghcr2ecr/other")["Parameter"]["Name"] == "/ghcr2ecr/other"
    [line] = json_logs.find("stale token parameter removed")
    assert line["parameter"] == parameter and line["age_seconds"] >= 70 * 60


def test_the_sweep_runs_before_the_app_exists(client, app_env: AppEnv, monkeypatch) -> None:
    from chalicelib.build import token_cleanup
    from chalicelib.config import settings

    started_build(client, app_env)
    for name in ("GITHUB_APP_ID", "SYNC_QUEUE_URL", "CODEBUILD_PROJECT"):  # empty until create-app and deploy
        monkeypatch.setenv(name, "")
    settings.cache_clear()
    assert len(token_cleanup.sweep(datetime.now(timezone.utc) + timedelta(hours=2))) == 1
    assert app_env.token_parameters() == []


def test_the_hourly_sweep_is_wired_and_leaves_fresh_tokens_alone(client, app_env: AppEnv) -> None:
    import app

    started_build(client, app_env)
    [schedule] = [e for e in app.app.event_sources if e.name == "sweep_tokens"]
    assert isinstance(schedule, ScheduledEventConfig) and isinstance(schedule.schedule_expression, Rate)
    assert (schedule.schedule_expression.value, schedule.schedule_expression.unit) == (1, "HOURS")
    client.lambda_.invoke("sweep_tokens", client.events.generate_cw_event("aws.events", "Scheduled Event", {}, []))
    assert len(app_env.token_parameters()) == 1

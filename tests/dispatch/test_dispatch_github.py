"""Dispatch against GitHub's answers: rate limits pass (redelivery), refusals end the message."""

from __future__ import annotations

import pytest
from githubkit.exception import RequestFailed

from chalicelib.github.app import rate_limited

from tests.support.app_fixtures import AppEnv, dispatch_queued, load_delivery, post

INDEX = "multiplatform-tagged-index"


def queued_event(client, env: AppEnv) -> dict:
    """Deliver the tagged index; return the SQS event Lambda would hand dispatch (the message stays queued)."""
    assert post(client, load_delivery(INDEX)).status_code == 202
    [message] = env.receive()
    return client.events.generate_sqs_event([message["Body"]])


def test_a_rate_limited_variables_read_is_redelivered_not_dropped(client, app_env: AppEnv, json_logs) -> None:
    event = queued_event(client, app_env)
    app_env.github.inject("/repos/octo-org/app/actions/*", status=403, headers={"Retry-After": "60"},
                          message="You have exceeded a secondary rate limit")
    with pytest.raises(RequestFailed) as raised:  # Lambda reports the batch failed: SQS redelivers the message
        client.lambda_.invoke("dispatch", event)
    assert raised.value.response.status_code == 403 and rate_limited(raised.value)
    assert json_logs.find("sync not started") == []
    assert [t.revoked for t in app_env.github.tokens] == [True]
    client.lambda_.invoke("dispatch", event)  # the limit has passed
    assert len(app_env.codebuild.calls) == 1


def test_an_installation_of_another_account_than_the_owner_is_refused(client, app_env: AppEnv, json_logs) -> None:
    delivery = load_delivery(INDEX)
    payload = delivery.payload
    payload["registry_package"]["owner"]["id"] = 1002  # installation 77 is octo-org's, account 1001
    app_env.boto("secretsmanager").create_secret(Name="ghcr2ecr/ghcr-pull/1002", SecretString="other's token")
    assert post(client, delivery.with_payload(payload)).status_code == 202
    assert dispatch_queued(client, app_env) == [None]  # handled for good: SQS deletes the message
    assert app_env.codebuild.calls == [] and app_env.github.tokens == []
    [line] = json_logs.find("sync not started")
    assert line["code"] == "account_mismatch" and "1001" in line["reason"] and "1002" in line["reason"]


def test_a_suspended_installation_stops_before_a_token_is_minted(client, app_env: AppEnv, json_logs) -> None:
    app_env.github.suspend_installation(77)
    assert post(client, load_delivery(INDEX)).status_code == 202
    dispatch_queued(client, app_env)
    assert [r.path for r in app_env.github.requests] == ["/app/installations/77"]
    assert [line["code"] for line in json_logs.find("sync not started")] == ["installation_suspended"]


def test_the_installation_is_asked_about_once_per_container(client, app_env: AppEnv) -> None:
    assert post(client, load_delivery(INDEX)).status_code == 202
    assert post(client, load_delivery("updated-linked")).status_code == 202
    dispatch_queued(client, app_env)
    assert len(app_env.codebuild.calls) == 2
    paths = [r.path for r in app_env.github.requests if r.method != "DELETE"]
    assert paths.count("/app/installations/77") == 1
    assert len(paths) == 1 + 2 * 3  # per sync: a token, organization-shared and repository variables


def test_a_rate_limited_installation_lookup_is_redelivered(client, app_env: AppEnv, json_logs) -> None:
    event = queued_event(client, app_env)
    app_env.github.inject("/app/installations/77", status=429, headers={"Retry-After": "5"})
    with pytest.raises(RequestFailed) as raised:
        client.lambda_.invoke("dispatch", event)
    assert raised.value.response.status_code == 429
    assert json_logs.find("sync not started") == [] and app_env.github.tokens == []
    client.lambda_.invoke("dispatch", event)
    assert len(app_env.codebuild.calls) == 1

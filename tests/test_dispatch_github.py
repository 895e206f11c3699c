"""Dispatch against GitHub's answers: rate limits pass (redelivery), refusals end the message."""

from __future__ import annotations

import pytest

from tests.support.app_fixtures import AppEnv, load_delivery, post

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
    with pytest.raises(Exception):  # Lambda reports the batch failed: SQS redelivers the message
        client.lambda_.invoke("dispatch", event)
    assert json_logs.find("sync not started") == []
    assert [t.revoked for t in app_env.github.tokens] == [True]
    client.lambda_.invoke("dispatch", event)  # the limit has passed
    assert len(app_env.codebuild.calls) == 1

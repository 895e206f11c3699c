"""A redelivered message answered with its earlier build leaves no unused token behind."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import aws
from chalicelib.webhooks import SyncRequest
from tests.support.app_fixtures import AppEnv, load_delivery, post

EARLIER = datetime.now(timezone.utc) - timedelta(minutes=2)


@pytest.mark.parametrize("earlier_build", [
    # finished, and on_build_state has cleaned up after it
    aws.StartedBuild("ghcr2ecr-test-copy:0b1c", complete=True, started=EARLIER),
    # still running: it read its own token when it started, from the parameter just rewritten
    aws.StartedBuild("ghcr2ecr-test-copy:0b1c", complete=False, started=EARLIER),
])
def test_a_redelivery_answered_with_the_earlier_build_revokes_its_new_token(
        client, app_env: AppEnv, json_logs, earlier_build: aws.StartedBuild) -> None:
    assert post(client, load_delivery("multiplatform-tagged-index")).status_code == 202
    [message] = app_env.receive()
    event = client.events.generate_sqs_event([message["Body"]])
    client.lambda_.invoke("dispatch", event)
    if earlier_build.complete:
        app_env.boto("ssm").delete_parameter(Name=app_env.codebuild.variables(0)["GHCR2ECR_SOURCE_TOKEN"][1])
    # SQS hands the message over again within CodeBuild's idempotency window: StartBuild returns that build.
    app_env.codebuild.earlier[SyncRequest.from_json(message["Body"]).dedup_id] = earlier_build
    client.lambda_.invoke("dispatch", event)
    assert app_env.token_parameters() == []
    first_token, second_token = app_env.github.tokens
    assert second_token.revoked and not first_token.revoked  # the first one is the build's to revoke
    [line] = json_logs.find("sync skipped")
    assert line["code"] == "already_built" and line["build_id"] == "ghcr2ecr-test-copy:0b1c"


def test_a_fresh_build_is_not_mistaken_for_an_earlier_one(client, app_env: AppEnv) -> None:
    assert post(client, load_delivery("multiplatform-tagged-index")).status_code == 202
    [message] = app_env.receive()
    client.lambda_.invoke("dispatch", client.events.generate_sqs_event([message["Body"]]))
    assert len(app_env.token_parameters()) == 1 and not app_env.github.tokens[0].revoked

"""A redelivered message whose build already finished leaves no token behind."""

from __future__ import annotations

from chalicelib import aws
from chalicelib.webhooks import SyncRequest
from tests.support.app_fixtures import AppEnv, load_delivery, post


def test_a_redelivery_answered_with_a_finished_build_revokes_its_new_token(client, app_env: AppEnv,
                                                                          json_logs) -> None:
    assert post(client, load_delivery("multiplatform-tagged-index")).status_code == 202
    [message] = app_env.receive()
    event = client.events.generate_sqs_event([message["Body"]])
    client.lambda_.invoke("dispatch", event)
    # The build ran and ended (on_build_state cleaned up); then SQS hands the message over again, within
    # CodeBuild's idempotency window, so StartBuild returns that same build, finished.
    request = SyncRequest.from_json(message["Body"])
    app_env.codebuild.finished[request.dedup_id] = aws.StartedBuild("ghcr2ecr-test-copy:0b1c", complete=True)
    app_env.boto("ssm").delete_parameter(Name=app_env.codebuild.variables(0)["GHCR2ECR_SOURCE_TOKEN"][1])
    client.lambda_.invoke("dispatch", event)
    assert app_env.token_parameters() == []
    first_token, second_token = app_env.github.tokens
    assert second_token.revoked and not first_token.revoked  # the first one is the build's to revoke
    [line] = json_logs.find("sync skipped")
    assert line["code"] == "already_built" and line["build_id"] == "ghcr2ecr-test-copy:0b1c"

"""A redelivered message answered with its earlier build leaves that build's token alone and no unused token behind."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import aws
from chalicelib.jobs import Job
from tests.support.app_fixtures import AppEnv, load_delivery, post

EARLIER = datetime.now(timezone.utc) - timedelta(minutes=2)
# What CodeBuild may answer a StartBuild repeated within 5 minutes with the same idempotency token and another
# token parameter name (FACTS.md §7): the earlier build, or "a parameter mismatch error" (its code undocumented).
ANSWERS = {
    "earlier build, finished": aws.StartedBuild("ghcr2ecr-test-copy:0b1c", complete=True, started=EARLIER),
    "earlier build, queued or running": aws.StartedBuild("ghcr2ecr-test-copy:0b1c", complete=False, started=EARLIER),
    "mismatch, IdempotentParameterMismatchException": ("IdempotentParameterMismatchException", "mismatch"),
    "mismatch, InvalidInputException": ("InvalidInputException",
                                        "Idempotency token was already used with different parameters"),
}


@pytest.mark.parametrize("answer", list(ANSWERS.values()), ids=list(ANSWERS))
def test_a_redelivery_answered_with_the_earlier_build_keeps_its_token_and_revokes_the_new_one(
        client, app_env: AppEnv, json_logs, answer: aws.StartedBuild | tuple[str, str]) -> None:
    assert post(client, load_delivery("multiplatform-tagged-index")).status_code == 202
    [message] = app_env.receive()
    event = client.events.generate_sqs_event([message["Body"]])
    client.lambda_.invoke("dispatch", event)
    [first_parameter] = app_env.token_parameters()
    finished = isinstance(answer, aws.StartedBuild) and answer.complete
    if finished:  # on_build_state has cleaned up after it
        app_env.boto("ssm").delete_parameter(Name=first_parameter)
    # SQS hands the message over again within CodeBuild's idempotency window.
    if isinstance(answer, aws.StartedBuild):
        app_env.codebuild.earlier[Job.from_json(message["Body"]).dedup_id] = answer
    else:
        app_env.codebuild.fail_next.append(answer)
    client.lambda_.invoke("dispatch", event)
    first_token, second_token = app_env.github.tokens
    assert second_token.revoked and not first_token.revoked  # the first one is the earlier build's to revoke
    # A build still queued has not read its PARAMETER_STORE value yet: its parameter and token stay as written.
    assert app_env.token_parameters() == ([] if finished else [first_parameter])
    if not finished:
        stored = app_env.boto("ssm").get_parameter(Name=first_parameter, WithDecryption=True)["Parameter"]["Value"]
        assert stored == first_token.value
    [line] = json_logs.find("sync skipped")
    assert line["code"] == "already_built"


def test_each_dispatch_attempt_writes_its_own_token_parameter(client, app_env: AppEnv) -> None:
    assert post(client, load_delivery("multiplatform-tagged-index")).status_code == 202
    [message] = app_env.receive()
    event = client.events.generate_sqs_event([message["Body"]])
    client.lambda_.invoke("dispatch", event)
    client.lambda_.invoke("dispatch", event)  # moto, unlike CodeBuild, starts a second build
    first, second = (app_env.codebuild.variables(i)["GHCR2ECR_SOURCE_TOKEN"][1] for i in (0, 1))
    assert first != second and sorted(app_env.token_parameters()) == sorted([first, second])
    request = Job.from_json(message["Body"])
    assert all(name.startswith(f"/ghcr2ecr/tokens/{request.dedup_id}/") for name in (first, second))
    assert len(first) <= 1011 and all(c.isalnum() or c in "/_.-" for c in first)  # SSM's name rules
    assert [call["idempotency_token"] for call in app_env.codebuild.calls] == [request.dedup_id] * 2


def test_a_fresh_build_is_not_mistaken_for_an_earlier_one(client, app_env: AppEnv) -> None:
    assert post(client, load_delivery("multiplatform-tagged-index")).status_code == 202
    [message] = app_env.receive()
    client.lambda_.invoke("dispatch", client.events.generate_sqs_event([message["Body"]]))
    assert len(app_env.token_parameters()) == 1 and not app_env.github.tokens[0].revoked


def test_a_build_started_whose_answer_timed_out_keeps_its_token_and_the_redelivery_converges(
        client, app_env: AppEnv, json_logs) -> None:
    from chalicelib.dispatch.handler import StartUncertain
    from standins.codebuild import resolve_variables

    assert post(client, load_delivery("multiplatform-tagged-index")).status_code == 202
    [message] = app_env.receive()
    event = client.events.generate_sqs_event([message["Body"]])
    app_env.codebuild.idempotent = True
    app_env.codebuild.lose_answers = 1  # StartBuild starts the build, then its answer times out
    with pytest.raises(StartUncertain):  # SQS redelivers the message
        client.lambda_.invoke("dispatch", event)
    [build] = app_env.codebuild.builds
    [first_token] = app_env.github.tokens
    first_parameter = next(v["value"] for v in build["variables"] if v["type"] == "PARAMETER_STORE")
    assert app_env.token_parameters() == [first_parameter] and not first_token.revoked
    # The redelivery repeats the idempotency token with its own parameter: CodeBuild refuses it (mismatch).
    client.lambda_.invoke("dispatch", event)
    assert len(app_env.codebuild.builds) == 1
    [line] = json_logs.find("sync skipped")
    assert line["code"] == "already_built"
    second_token = app_env.github.tokens[1]
    assert second_token.revoked and not first_token.revoked
    # The build that did start finds its token where it looks: it mirrors the image.
    resolved = resolve_variables(build["variables"], app_env.boto("ssm"), app_env.boto("secretsmanager"))
    assert resolved["GHCR2ECR_SOURCE_TOKEN"] == first_token.value
    assert app_env.token_parameters() == [first_parameter]


def test_a_start_build_refused_by_codebuild_deletes_its_parameter_and_revokes(client, app_env: AppEnv) -> None:
    assert post(client, load_delivery("multiplatform-tagged-index")).status_code == 202
    [message] = app_env.receive()
    app_env.codebuild.fail_next.append("AccountLimitExceededException")  # an answer: nothing started
    with pytest.raises(Exception, match="AccountLimitExceededException"):
        client.lambda_.invoke("dispatch", client.events.generate_sqs_event([message["Body"]]))
    assert app_env.token_parameters() == [] and [t.revoked for t in app_env.github.tokens] == [True]

"""The hand-off routes through Chalice's test client, on moto and the GitHub stand-in, with a real OIDC issuer.

POST /github/handoff verifies before it reads, stores the job token by reference, and queues a Job that holds
no credential; GET /github/handoff/{id} answers only the repository that handed off. Dispatch finds the
installation, applies GHCR2ECR_HANDOFF, starts the build with the job token as the first source credential,
and keeps the record; on_build_state deletes the job token's parameter without revoking it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib import aws
from chalicelib.build import contract, report_store
from chalicelib.config import settings
from chalicelib.handoff.verify import verifier_for
from chalicelib.jobs import Job
from standins.aws import ACCOUNT_ID
from standins.oidc import Job as ActionsJob
from standins.oidc import OidcIssuer
from tests.handoff.conftest import AUDIENCE
from tests.support.app_fixtures import AppEnv, build_state_event, dispatch_queued, load_delivery, post

BUCKET = "ghcr2ecr-test-reports"
DIGEST = "sha256:" + "c" * 64
IMAGE = f"ghcr.io/octo-org/app@{DIGEST}"
JOB_TOKEN = "ghs_jobTOKENfortheonecopy0123456789"


@pytest.fixture
def handoff_env(app_env: AppEnv, issuer: OidcIssuer, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppEnv]:
    """app_env with hand-offs on: the report bucket, HANDOFF_AUDIENCE and the issuer stand-in."""
    app_env.boto("s3").create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("REPORT_BUCKET", BUCKET)
    monkeypatch.setenv("HANDOFF_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("OIDC_ISSUER", issuer.issuer)
    settings.cache_clear()
    verifier_for.cache_clear()
    yield app_env
    verifier_for.cache_clear()


def hand_off(client: Any, id_token: str | None, body: Any = None, raw: bytes | None = None) -> Any:
    """POST a hand-off as the action does."""
    headers = {"Content-Type": "application/json"}
    if id_token is not None:
        headers["Authorization"] = f"Bearer {id_token}"
    default = {"image": IMAGE, "token": JOB_TOKEN}
    payload = raw if raw is not None else json.dumps(body if body is not None else default).encode()
    return client.http.post("/github/handoff", headers=headers, body=payload)


def poll(client: Any, id_token: str, handoff_id: str) -> Any:
    """GET a hand-off's status as the action does."""
    return client.http.get(f"/github/handoff/{handoff_id}", headers={"Authorization": f"Bearer {id_token}"})


def stored_parameters(env: AppEnv) -> list[str]:
    """Return every SSM parameter under the token prefix."""
    found = env.boto("ssm").get_parameters_by_path(Path="/ghcr2ecr/tokens", Recursive=True)["Parameters"]
    return [p["Name"] for p in found]


def nothing_accepted(env: AppEnv) -> bool:
    """Tell whether no token was stored, nothing queued and no record written."""
    records = env.boto("s3").list_objects_v2(Bucket=BUCKET, Prefix="handoffs/").get("KeyCount", 0)
    return stored_parameters(env) == [] and env.sqs.sent == [] and records == 0


def test_a_verified_hand_off_stores_the_job_token_by_reference_and_queues_a_job_without_it(
        client, handoff_env: AppEnv, issuer: OidcIssuer) -> None:
    answer = hand_off(client, issuer.mint(AUDIENCE))
    assert answer.status_code == 202
    body = json.loads(answer.body)
    assert body["status"] == "queued" and len(body["id"]) == 32
    parameter = f"/ghcr2ecr/tokens/handoff/{body['id']}"
    assert stored_parameters(handoff_env) == [parameter]
    stored = handoff_env.boto("ssm").get_parameter(Name=parameter, WithDecryption=True)["Parameter"]
    assert stored["Value"] == JOB_TOKEN and stored["Type"] == "SecureString"
    [sent] = handoff_env.sqs.sent
    assert JOB_TOKEN not in json.dumps(sent)
    job = Job.from_json(sent["body"])
    assert (job.origin, job.correlation_id, job.installation_id) == ("handoff", body["id"], 0)
    assert (job.package.owner_id, job.package.path, job.package.repository) == (1001, "octo-org/app", "app")
    assert (job.selection.digest, job.selection.tag, job.selection.revision) == (DIGEST, None, issuer.job.sha)
    status = poll(client, issuer.mint(AUDIENCE), body["id"])
    assert status.status_code == 200
    assert json.loads(status.body) == {"status": "queued", "image": "", "tags": [], "reason": ""}


@pytest.mark.parametrize("forge", [
    lambda issuer: issuer.mint("https://another.example/api"),
    lambda issuer: issuer.mint_expired(AUDIENCE),
    lambda issuer: issuer.mint_not_yet_valid(AUDIENCE),
    lambda issuer: issuer.mint_alg_none(AUDIENCE),
    lambda issuer: issuer.mint_hs256_public_key(AUDIENCE),
    lambda issuer: issuer.mint_by_outsider(AUDIENCE),
    lambda issuer: issuer.mint_unknown_kid(AUDIENCE),
    lambda issuer: issuer.mint(AUDIENCE, iss=issuer.issuer + "-evil"),
    lambda issuer: issuer.mint(AUDIENCE, repository_owner_id=1001),
    lambda issuer: "not-a-jwt",
], ids=["audience", "expired", "not-yet-valid", "alg-none", "hs256-public-key", "outsider-key", "unknown-kid",
        "issuer-prefix", "numeric-owner-id", "malformed"])
def test_an_id_token_that_fails_verification_gets_401_and_nothing_is_stored_or_queued(
        client, handoff_env: AppEnv, issuer: OidcIssuer, forge: Any) -> None:
    answer = hand_off(client, forge(issuer))
    assert answer.status_code == 401, answer.body
    assert JOB_TOKEN not in answer.body.decode()
    assert nothing_accepted(handoff_env)


@pytest.mark.parametrize("authorization", [None, "", "Basic eDp5", "Bearer "])
def test_a_missing_id_token_gets_401(client, handoff_env: AppEnv, authorization: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    answer = client.http.post("/github/handoff", headers=headers, body=json.dumps({"image": IMAGE, "token": "t"}))
    assert answer.status_code == 401 and nothing_accepted(handoff_env)


def test_an_image_of_another_owner_than_the_tokens_repository_gets_403(client, handoff_env: AppEnv,
                                                                        issuer: OidcIssuer) -> None:
    answer = hand_off(client, issuer.mint(AUDIENCE), {"image": f"ghcr.io/other-org/app@{DIGEST}", "token": "t"})
    assert answer.status_code == 403 and "belongs to other-org" in json.loads(answer.body)["reason"]
    assert nothing_accepted(handoff_env)


def test_an_owner_not_allowed_by_allowed_accounts_gets_403(client, handoff_env: AppEnv, issuer: OidcIssuer) -> None:
    evil = ActionsJob(repository="evil-corp/app", repository_id=6001, repository_owner_id=6666)
    answer = hand_off(client, issuer.mint(AUDIENCE, job=evil), {"image": f"ghcr.io/evil-corp/app@{DIGEST}",
                                                                 "token": "t"})
    assert answer.status_code == 403 and "ALLOWED_ACCOUNTS" in json.loads(answer.body)["reason"]
    assert nothing_accepted(handoff_env)


@pytest.mark.parametrize("body", [
    {"image": IMAGE}, {"token": "t"}, {"image": IMAGE, "token": ""}, {"image": IMAGE, "token": 5},
    {"image": "ghcr.io/octo-org/app:latest", "token": "t"}, {"image": f"docker.io/octo-org/app@{DIGEST}", "token": "t"},
    {"image": "ghcr.io/octo-org/app@sha256:abc", "token": "t"},
    {"image": f"ghcr.io/octo-org/../x@{DIGEST}", "token": "t"},
    {"image": IMAGE, "token": "t", "tag": "bad tag"}, ["not", "an", "object"],
])
def test_a_malformed_body_or_image_gets_400_and_nothing_is_stored(client, handoff_env: AppEnv, issuer: OidcIssuer,
                                                                    body: Any) -> None:
    answer = hand_off(client, issuer.mint(AUDIENCE), body)
    assert answer.status_code == 400, answer.body
    assert nothing_accepted(handoff_env)


def test_a_body_over_the_limit_gets_413(client, handoff_env: AppEnv, issuer: OidcIssuer) -> None:
    answer = hand_off(client, issuer.mint(AUDIENCE), {"image": IMAGE, "token": "t" * 20_000})
    assert answer.status_code == 413 and nothing_accepted(handoff_env)


def test_hand_offs_are_404_when_the_deployment_has_no_audience(client, handoff_env: AppEnv, issuer: OidcIssuer,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_AUDIENCE", "")
    settings.cache_clear()
    assert hand_off(client, issuer.mint(AUDIENCE)).status_code == 404
    assert poll(client, issuer.mint(AUDIENCE), "0" * 32).status_code == 404
    assert nothing_accepted(handoff_env)


def test_a_queue_that_cannot_be_written_gets_503_and_leaves_no_token_behind(client, handoff_env: AppEnv,
                                                                          issuer: OidcIssuer) -> None:
    handoff_env.sqs.fail = True
    answer = hand_off(client, issuer.mint(AUDIENCE))
    assert answer.status_code == 503
    assert stored_parameters(handoff_env) == []


def test_the_status_answers_only_the_repository_that_handed_off(client, handoff_env: AppEnv,
                                                                issuer: OidcIssuer) -> None:
    handoff_id = json.loads(hand_off(client, issuer.mint(AUDIENCE)).body)["id"]
    sibling = ActionsJob(repository="octo-org/other", repository_id=2002, repository_owner_id=1001)
    assert poll(client, issuer.mint(AUDIENCE, job=sibling), handoff_id).status_code == 404
    assert poll(client, issuer.mint(AUDIENCE), "f" * 32).status_code == 404
    assert poll(client, issuer.mint(AUDIENCE), "..%2F..%2Freports").status_code == 404
    assert poll(client, issuer.mint_expired(AUDIENCE), handoff_id).status_code == 401
    assert poll(client, issuer.mint(AUDIENCE), handoff_id).status_code == 200


def started_handoff(client: Any, env: AppEnv, issuer: OidcIssuer) -> tuple[str, dict[str, Any]]:
    """Hand off and dispatch; return the hand-off id and the started build."""
    handoff_id = json.loads(hand_off(client, issuer.mint(AUDIENCE)).body)["id"]
    dispatch_queued(client, env)
    return handoff_id, env.codebuild.builds[-1]


def test_dispatch_starts_the_build_with_the_job_token_first_and_its_installation_token_apart(
        client, handoff_env: AppEnv, issuer: OidcIssuer) -> None:
    handoff_id, build = started_handoff(client, handoff_env, issuer)
    variables = contract.by_name(build["variables"])
    assert variables[contract.SOURCE_TOKEN] == {"name": contract.SOURCE_TOKEN, "type": "PARAMETER_STORE",
                                                "value": f"/ghcr2ecr/tokens/handoff/{handoff_id}"}
    installation = variables[contract.INSTALLATION_TOKEN]
    assert installation["type"] == "PARAMETER_STORE" and "/handoff/" not in installation["value"]
    assert all(JOB_TOKEN not in v["value"] for v in build["variables"])
    job = json.loads(variables[contract.JOB]["value"])
    assert (job["origin"], job["installation_id"], job["correlation_id"]) == ("handoff", 77, handoff_id)
    status = json.loads(poll(client, issuer.mint(AUDIENCE), handoff_id).body)
    assert status["status"] == "running"
    assert status["image"] == f"{ACCOUNT_ID}.dkr.ecr.us-east-1.amazonaws.com/ghcr/octo-org/app@{DIGEST}"


def finish(client: Any, env: AppEnv, build: dict[str, Any], status: str, report: dict[str, Any]) -> None:
    """Store the build's report and deliver its final state event to on_build_state."""
    env.boto("s3").put_object(Bucket=BUCKET, Key=report_store.report_key(build["id"]), Body=json.dumps(report).encode())
    arn = f"arn:aws:codebuild:us-east-1:{ACCOUNT_ID}:build/{build['id']}"
    client.lambda_.invoke("on_build_state", build_state_event(client, build["variables"], status, build_id=arn))


def test_a_finished_build_deletes_the_job_tokens_parameter_unrevoked_and_completes_the_record(
        client, handoff_env: AppEnv, issuer: OidcIssuer) -> None:
    handoff_id, build = started_handoff(client, handoff_env, issuer)
    sync = {"ok": True, "bytes_moved": 1234, "duration_seconds": 2.5, "errors": [],
            "tags": {"set": ["v1.2.3"], "unchanged": ["latest"]}}
    finish(client, handoff_env, build, "SUCCEEDED", {"ok": True, "packages": [
        {"package": "octo-org/app", "status": "synced", "reason": "r", "report": sync}]})
    assert stored_parameters(handoff_env) == []  # the job token's and the installation token's
    revoked = [t for t in handoff_env.github.tokens if t.revoked]
    assert revoked and all(t.value != JOB_TOKEN for t in revoked)  # only installation tokens, never the job's
    status = json.loads(poll(client, issuer.mint(AUDIENCE), handoff_id).body)
    assert status == {"status": "succeeded", "tags": ["v1.2.3", "latest"], "reason": "", "bytes_moved": 1234,
                      "duration_seconds": 2.5,
                      "image": f"{ACCOUNT_ID}.dkr.ecr.us-east-1.amazonaws.com/ghcr/octo-org/app@{DIGEST}"}


def test_a_failed_build_ends_the_hand_off_failed_with_its_cause(client, handoff_env: AppEnv,
                                                                 issuer: OidcIssuer) -> None:
    handoff_id, build = started_handoff(client, handoff_env, issuer)
    sync = {"ok": False, "errors": ["access to octo-org/app denied (tried: source token)"], "tags": {}}
    finish(client, handoff_env, build, "FAILED", {"ok": False, "packages": [
        {"package": "octo-org/app", "status": "failed", "reason": "denied", "report": sync}]})
    status = json.loads(poll(client, issuer.mint(AUDIENCE), handoff_id).body)
    assert status["status"] == "failed" and status["reason"].startswith("access to octo-org/app denied")


def test_ghcr2ecr_handoff_deny_refuses_the_hand_off_in_dispatch_and_drops_its_token(
        client, handoff_env: AppEnv, issuer: OidcIssuer) -> None:
    handoff_env.github.repo_variables[("octo-org", "app")] = {"GHCR2ECR_HANDOFF": "deny"}
    handoff_id = json.loads(hand_off(client, issuer.mint(AUDIENCE)).body)["id"]
    dispatch_queued(client, handoff_env)
    assert handoff_env.codebuild.calls == [] and stored_parameters(handoff_env) == []
    status = json.loads(poll(client, issuer.mint(AUDIENCE), handoff_id).body)
    assert status["status"] == "failed" and "GHCR2ECR_HANDOFF is deny" in status["reason"]


def test_a_hand_off_for_an_owner_without_the_app_ends_failed(client, handoff_env: AppEnv, issuer: OidcIssuer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_ACCOUNTS", "*")
    settings.cache_clear()
    stranger = ActionsJob(repository="lonely-org/app", repository_id=7001, repository_owner_id=7777)
    answer = hand_off(client, issuer.mint(AUDIENCE, job=stranger), {"image": f"ghcr.io/lonely-org/app@{DIGEST}",
                                                                      "token": JOB_TOKEN})
    handoff_id = json.loads(answer.body)["id"]
    dispatch_queued(client, handoff_env)
    assert handoff_env.codebuild.calls == []
    status = json.loads(poll(client, issuer.mint(AUDIENCE, job=stranger), handoff_id).body)
    assert status["status"] == "failed" and "not installed on lonely-org" in status["reason"]


def test_the_event_of_a_digest_a_hand_off_mirrors_starts_no_build(client, handoff_env: AppEnv,
                                                                 issuer: OidcIssuer) -> None:
    tagged = load_delivery("multiplatform-tagged-index")
    digest = tagged.payload["registry_package"]["package_version"]["version"]
    handoff_body = {"image": f"ghcr.io/octo-org/app@{digest}", "token": JOB_TOKEN}
    assert hand_off(client, issuer.mint(AUDIENCE), handoff_body).status_code == 202
    dispatch_queued(client, handoff_env)
    assert len(handoff_env.codebuild.calls) == 1  # the hand-off's
    assert post(client, tagged).status_code == 202
    [outcome] = dispatch_queued(client, handoff_env)
    assert len(handoff_env.codebuild.calls) == 1  # the event's build was not started


def test_with_ghcr2ecr_handoff_only_an_event_starts_nothing(client, handoff_env: AppEnv) -> None:
    handoff_env.github.repo_variables[("octo-org", "app")] = {"GHCR2ECR_HANDOFF": "only"}
    assert post(client, load_delivery("multiplatform-tagged-index")).status_code == 202
    dispatch_queued(client, handoff_env)
    assert handoff_env.codebuild.calls == []


@pytest.mark.parametrize("answer", [
    aws.StartedBuild("ghcr2ecr-test-copy:0b1c", started=datetime.now(timezone.utc) - timedelta(minutes=2)),
    ("InvalidInputException", "Idempotency token was already used with different parameters"),
], ids=["earlier build", "mismatch"])
def test_a_redelivered_hand_off_whose_build_already_started_keeps_it_running_with_its_job_token(
        client, handoff_env: AppEnv, issuer: OidcIssuer, answer: Any) -> None:
    handoff_id = json.loads(hand_off(client, issuer.mint(AUDIENCE)).body)["id"]
    [message] = handoff_env.receive()
    event = client.events.generate_sqs_event([message["Body"]])
    client.lambda_.invoke("dispatch", event)
    # SQS hands the message over again within CodeBuild's idempotency window
    if isinstance(answer, aws.StartedBuild):
        handoff_env.codebuild.earlier[Job.from_json(message["Body"]).dedup_id] = answer
    else:
        handoff_env.codebuild.fail_next.append(answer)
    client.lambda_.invoke("dispatch", event)
    status = json.loads(poll(client, issuer.mint(AUDIENCE), handoff_id).body)
    assert (status["status"], status["reason"]) == ("running", "")
    assert f"/ghcr2ecr/tokens/handoff/{handoff_id}" in stored_parameters(handoff_env)  # the started build reads it

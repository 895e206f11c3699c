"""Telling the tenant, end to end on moto and the GitHub stand-in: webhook → dispatch (check run queued) →
the build's stored report → on_build_state (check run completed, storage records), each write with its own
token; and every way it is skipped without touching the sync."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.build import report_store
from chalicelib.config import settings
from standins.aws import ACCOUNT_ID
from tests.support.app_fixtures import AppEnv, JsonLogs, build_state_event, dispatch_queued, load_delivery, post

BUCKET = "ghcr2ecr-test-reports"
REVISION = "0123456789abcdef0123456789abcdef01234567"
WRITES = {"checks": "write", "artifact_metadata": "write"}


@pytest.fixture
def reports_env(app_env: AppEnv, monkeypatch: pytest.MonkeyPatch) -> AppEnv:
    """app_env with the report bucket, and installation 77 (octo-org) having accepted the new permissions."""
    app_env.boto("s3").create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("REPORT_BUCKET", BUCKET)
    settings.cache_clear()
    app_env.github.installations[77].permissions.update(WRITES)
    return app_env


def delivery(revision: str = REVISION) -> Any:
    tagged = load_delivery("multiplatform-tagged-index")
    payload = tagged.payload
    payload["registry_package"]["package_version"]["container_metadata"]["labels"]["revision"] = revision
    return tagged.with_payload(payload)


def start(client: Any, env: AppEnv, revision: str = REVISION) -> dict[str, Any]:
    """Run webhook + dispatch; return the started build (id, variables)."""
    assert post(client, delivery(revision)).status_code == 202
    dispatch_queued(client, env)
    return env.codebuild.builds[-1]


def plain(build: dict[str, Any]) -> dict[str, str]:
    return {v["name"]: v["value"] for v in build["variables"] if v["type"] == "PLAINTEXT"}


def digest_of(build: dict[str, Any]) -> str:
    return json.loads(plain(build)["GHCR2ECR_JOB"])["selection"]["digest"]


def sync_report(build: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    digest = digest_of(build)
    report = {"ok": True, "bytes_moved": 2_500_000, "duration_seconds": 3.5, "errors": [],
              "tags": {"set": ["v1.2.3", "latest"], "unchanged": [], "conflicts": [], "skipped": {}},
              "digests": {"v1.2.3": digest, "latest": digest}}
    report.update(overrides)
    return report


def store(env: AppEnv, build: dict[str, Any], report: dict[str, Any] | None, status: str = "synced") -> None:
    """Store the job report as `ghcr2ecr store-report` does in the build's `finally`."""
    job = {"ok": status != "failed", "packages": [{"package": "octo-org/app", "status": status, "reason": "r",
                                                   "report": report}]}
    env.boto("s3").put_object(Bucket=BUCKET, Key=report_store.report_key(build["id"]), Body=json.dumps(job).encode())


def finish(client: Any, build: dict[str, Any], status: str) -> None:
    arn = f"arn:aws:codebuild:us-east-1:{ACCOUNT_ID}:build/{build['id']}"
    client.lambda_.invoke("on_build_state", build_state_event(client, build["variables"], status, build_id=arn))


def reporting_tokens(env: AppEnv) -> list[Any]:
    return [t for t in env.github.tokens if set(t.permissions) & set(WRITES)]


def test_success_completes_the_check_run_and_records_the_digest_each_with_its_own_token(
        client, reports_env: AppEnv, json_logs: JsonLogs) -> None:
    build = start(client, reports_env)
    [run] = reports_env.github.check_runs.values()
    assert (run.name, run.head_sha, run.status, run.repo) == ("ghcr2ecr", REVISION, "queued", "app")
    variables = plain(build)
    assert (variables["GHCR2ECR_CHECK_RUN_ID"] == str(run.id)
            and variables["GHCR2ECR_GITHUB_REPOSITORY"] == "octo-org/app")
    assert variables["GHCR2ECR_CHECK_RUN_EXTERNAL_ID"] == run.external_id
    [build_token] = [t for t in reports_env.github.tokens if "packages" in t.permissions]
    assert not set(build_token.permissions) & set(WRITES)  # the build's token never writes

    store(reports_env, build, sync_report(build))
    finish(client, build, "SUCCEEDED")
    assert (run.status, run.conclusion) == ("completed", "success")
    digest = digest_of(build)
    assert run.output["title"].startswith("Mirrored to ECR: ghcr/octo-org/app@")
    dest = json.loads(variables["GHCR2ECR_JOB"])["targets"][0]["dest"]
    assert f"docker pull {dest}@{digest}" in run.output["summary"]
    assert "`v1.2.3`, `latest`" in run.output["summary"] and "2.5 MB" in run.output["summary"]
    [record] = reports_env.github.storage_records
    assert record.body["digest"] == digest and record.body["version"] == "v1.2.3"
    assert record.body["github_repository"] == "app" and record.body["repository"] == "ghcr/octo-org/app"
    writers = [token for _method, token in run.writes] + [record.token]
    assert [t.permissions for t in writers] == [{"checks": "write", "metadata": "read"}] * 2 + [
        {"artifact_metadata": "write", "metadata": "read"}]
    assert all(t.repositories == ["app"] for t in writers)
    assert len({t.value for t in writers}) == 3 and all(t.revoked for t in reporting_tokens(reports_env))
    [line] = json_logs.find("build finished")
    assert line["check_run"] == "completed" and line["storage_records"] == 1


def test_a_denied_private_package_fails_the_check_run_with_the_credential_to_store_and_records_nothing(
        client, reports_env: AppEnv) -> None:
    build = start(client, reports_env)
    denied = sync_report(build, ok=False, tags={"set": [], "unchanged": [], "conflicts": [], "skipped": {}},
                         errors=["access to octo-org/app denied (tried: installation token, anonymous); ..."])
    store(reports_env, build, denied, status="failed")
    finish(client, build, "FAILED")
    [run] = reports_env.github.check_runs.values()
    assert (run.status, run.conclusion) == ("completed", "failure")
    assert run.output["title"] == "Not mirrored: GHCR denied access to octo-org/app"
    assert "`ghcr2ecr/ghcr-pull/1001`" in run.output["summary"]
    assert reports_env.github.storage_records == []
    assert not [t for t in reporting_tokens(reports_env) if "artifact_metadata" in t.permissions]  # none minted


@pytest.mark.parametrize("status,conclusion", [("TIMED_OUT", "timed_out"), ("FAULT", "failure"),
                                               ("STOPPED", "cancelled")])
def test_a_build_that_died_without_a_report_still_concludes_its_check_run(client, reports_env: AppEnv,
                                                                          status: str, conclusion: str) -> None:
    build = start(client, reports_env)
    finish(client, build, status)  # no report stored: the build died before its `finally`
    [run] = reports_env.github.check_runs.values()
    assert (run.status, run.conclusion) == ("completed", conclusion)
    assert run.output["title"].startswith("Not mirrored: the copy build ") and build["id"] in run.output["summary"]


def test_without_a_revision_label_there_is_no_check_run_but_the_digest_is_recorded(
        client, reports_env: AppEnv, json_logs: JsonLogs) -> None:
    build = start(client, reports_env, revision="")
    assert reports_env.github.check_runs == {} and "GHCR2ECR_CHECK_RUN_ID" not in plain(build)
    assert not [t for t in reporting_tokens(reports_env) if "checks" in t.permissions]
    [line] = json_logs.find("no check run")
    assert line["reason"] == "the image has no org.opencontainers.image.revision label"
    store(reports_env, build, sync_report(build))
    finish(client, build, "SUCCEEDED")
    assert len(reports_env.github.storage_records) == 1


def test_ghcr2ecr_checks_false_makes_no_check_run(client, reports_env: AppEnv, json_logs: JsonLogs) -> None:
    reports_env.github.set_repo_variables("octo-org", "app", {"GHCR2ECR_CHECKS": "false"})
    build = start(client, reports_env)
    store(reports_env, build, sync_report(build))
    finish(client, build, "SUCCEEDED")
    assert reports_env.github.check_runs == {}
    assert [line["reason"] for line in json_logs.find("no check run")] == ["GHCR2ECR_CHECKS is false"]
    assert [line["status"] for line in json_logs.find("build finished")] == ["SUCCEEDED"]


def test_an_invalid_variable_is_named_on_the_commit_and_no_build_starts(client, reports_env: AppEnv) -> None:
    reports_env.github.set_repo_variables("octo-org", "app", {"GHCR2ECR_SIGNATURES": "perhaps"})
    assert post(client, delivery()).status_code == 202
    dispatch_queued(client, reports_env)
    assert reports_env.codebuild.calls == []
    [run] = reports_env.github.check_runs.values()
    assert (run.status, run.conclusion) == ("completed", "failure")
    assert run.output["title"] == "Not mirrored: Actions variable GHCR2ECR_SIGNATURES is invalid"


def test_an_installation_without_the_new_permissions_keeps_mirroring_with_one_log_line_per_report(
        client, app_env: AppEnv, monkeypatch: pytest.MonkeyPatch, json_logs: JsonLogs) -> None:
    app_env.boto("s3").create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("REPORT_BUCKET", BUCKET)
    settings.cache_clear()  # installation 77 keeps the four read permissions it accepted before
    build = start(client, app_env)
    assert len(app_env.codebuild.calls) == 1 and "GHCR2ECR_CHECK_RUN_ID" not in plain(build)
    store(app_env, build, sync_report(build))
    finish(client, build, "SUCCEEDED")
    skipped = json_logs.find("reporting to GitHub skipped")
    assert [(line["permission"], line["code"]) for line in skipped] == [
        ("checks: write", "token_refused"), ("artifact_metadata: write", "token_refused")]
    refused = [r for r in app_env.github.requests if r.path.endswith("/access_tokens")]
    assert len(refused) == 3  # the build's token, one refused per report: no retries
    assert app_env.github.check_runs == {} and app_env.github.storage_records == []
    [line] = json_logs.find("build finished")
    assert line["status"] == "SUCCEEDED" and line["storage_records"] == 0
    assert not json_logs.find("dispatch failed; SQS will redeliver the message")


def test_a_retried_event_does_each_effect_at_most_once(client, reports_env: AppEnv, json_logs: JsonLogs) -> None:
    build = start(client, reports_env)
    store(reports_env, build, sync_report(build))
    for _ in range(3):  # EventBridge's duplicate delivery, then Lambda's retry
        finish(client, build, "SUCCEEDED")
    [run] = reports_env.github.check_runs.values()
    assert [method for method, _token in run.writes] == ["POST", "PATCH"]
    assert len(reports_env.github.storage_records) == 1
    assert [t.revoked for t in reporting_tokens(reports_env)] == [True] * len(reporting_tokens(reports_env))
    assert len(json_logs.find("build finished")) == 1
    repeated = json_logs.find("build event repeated; its effects were done once")
    assert [(line["check_run"], line["storage_records"]) for line in repeated] == [
        ("already completed", "already written")] * 2
    assert [line["token_parameter_deleted"] for line in repeated] == [False, False]


def test_a_check_run_that_is_not_this_builds_is_left_alone(client, reports_env: AppEnv) -> None:
    build = start(client, reports_env)
    forged = [{**v, "value": "another-attempt"} if v["name"] == "GHCR2ECR_CHECK_RUN_EXTERNAL_ID" else v
              for v in build["variables"]]
    finish(client, {**build, "variables": forged}, "FAILED")
    [run] = reports_env.github.check_runs.values()
    assert run.status == "queued" and [m for m, _t in run.writes] == ["POST"]


def test_no_reporting_token_shows_in_logs_variables_or_check_runs(client, reports_env: AppEnv,
                                                                  json_logs: JsonLogs, capsys) -> None:
    build = start(client, reports_env)
    store(reports_env, build, sync_report(build))
    finish(client, build, "SUCCEEDED")
    [run] = reports_env.github.check_runs.values()
    seen = json_logs.text() + json.dumps(build["variables"]) + json.dumps(run.output) + capsys.readouterr().out
    seen += json.dumps([r.body for r in reports_env.github.storage_records])
    assert len(reporting_tokens(reports_env)) == 3
    for token in reports_env.github.tokens:
        assert token.value not in seen


def test_a_redelivery_that_finds_its_build_already_started_completes_its_own_check_run_as_skipped(
        client, reports_env: AppEnv) -> None:
    assert post(client, delivery()).status_code == 202
    [message] = reports_env.receive()
    event = client.events.generate_sqs_event([message["Body"]])
    client.lambda_.invoke("dispatch", event)
    reports_env.codebuild.fail_next.append(("InvalidInputException", "idempotency token mismatch"))
    client.lambda_.invoke("dispatch", event)  # SQS hands it over again within CodeBuild's idempotency window
    first, second = reports_env.github.check_runs.values()
    assert first.status == "queued"  # the build that runs completes it
    assert (second.status, second.conclusion) == ("completed", "skipped")
    assert len(reports_env.codebuild.calls) == 1

"""A private image mirrored through the hand-off alone: the job's token pulls it, nothing else could, nothing keeps it.

The GHCR stand-in denies the App's installation tokens the private package (as ghcr.io does) and Secrets Manager
holds no fallback read credential, so the job token lent through POST /github/handoff is the only way in. The
hand-off goes through Chalice's test client with an ID token of the issuer stand-in; dispatch runs on moto and the
GitHub stand-in; the build runs run-job's own code and the buildspec's `finally`; on_build_state gets its event.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from chalicelib.build import contract, report_store
from standins import images, skopeo
from standins.ghcr_ecr import EcrStandin, GhcrStandin, push_to
from standins.oidc import OidcIssuer
from standins.tokens import Credential
from tests.handoff.conftest import AUDIENCE
from tests.support.app_fixtures import AppEnv, dispatch_queued
from tests.support.converge import delivery_for, moto_ecr, unique_package  # noqa: F401
from tests.support.handoff import BUCKET, FinishedRun, RevocationLog, deny_app_tokens, leaks, open_hand_offs, run_build
from tests.support.handoff import private_world  # noqa: F401

pytestmark = pytest.mark.registry
TAGS = ("v1.2.3", "latest")


def bucket_objects(env: AppEnv) -> dict[str, str]:
    """Return every object of the report bucket (records, reports, markers) by key, as text."""
    s3 = env.boto("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode(errors="replace") for key in keys}


def parameter_exists(env: AppEnv, name: str) -> bool:
    """Tell whether an SSM parameter exists."""
    found = env.boto("ssm").get_parameters(Names=[name])["Parameters"]
    return bool(found)


@pytest.fixture
def revocations(private_world: AppEnv, monkeypatch: pytest.MonkeyPatch) -> RevocationLog:
    """The tokens sent to the GitHub stand-in's DELETE /installation/token during the test."""
    log = RevocationLog()
    log.attach(monkeypatch, private_world.github)
    return log


def hand_off(client: Any, issuer: OidcIssuer, package: str, digest: str, job_token: str) -> Any:
    """POST the workflow step's hand-off of ghcr.io/octo-org/<package>@<digest> with a fresh ID token."""
    return client.http.post("/github/handoff", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {issuer.mint(AUDIENCE)}"},
        body=json.dumps({"image": f"ghcr.io/octo-org/{package}@{digest}", "token": job_token}))


def handed_off_and_built(client: Any, env: AppEnv, ghcr: GhcrStandin, issuer: OidcIssuer, owner_glob: str,
                         tmp_path: Path) -> tuple[str, str, Any, Credential, FinishedRun]:
    """Push a private image, hand it off with a job token pulling `owner_glob`, dispatch and run its build;
    return the package, the hand-off id, the pushed image, the job token and the finished run."""
    package = unique_package("private")
    pushed = push_to(ghcr, f"octo-org/{package}", images.single_image(seed=package), TAGS[:1])
    job_token = ghcr.job_token(owner_glob)
    handoff_id = json.loads(hand_off(client, issuer, package, pushed.digest, job_token.password).body)["id"]
    dispatch_queued(client, env)
    [build] = env.codebuild.builds
    deny_app_tokens(env, ghcr)
    run = run_build(build, env.boto("ssm"), env.boto("secretsmanager"), ghcr, tmp_path)
    return package, handoff_id, pushed, job_token, run


def test_a_private_image_is_mirrored_with_the_job_token_alone_which_is_kept_out_of_everything_and_never_revoked(
        client: Any, private_world: AppEnv, ghcr: GhcrStandin, moto_ecr: EcrStandin,  # noqa: F811
        issuer: OidcIssuer, revocations: RevocationLog, json_logs: Any, capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="ghcr2ecr")
    open_hand_offs(monkeypatch, issuer, AUDIENCE)
    env = private_world
    package = unique_package("private")
    source = f"{ghcr.host}/octo-org/{package}"
    pushed = push_to(ghcr, f"octo-org/{package}", images.multi_platform_index(seed=package), TAGS)
    job_token = ghcr.job_token("octo-org/*")
    assert env.boto("secretsmanager").list_secrets()["SecretList"] == []  # no operator read credential

    answer = hand_off(client, issuer, package, pushed.digest, job_token.password)
    assert answer.status_code == 202, answer.body
    handoff_id = json.loads(answer.body)["id"]
    parameter = f"/ghcr2ecr/tokens/handoff/{handoff_id}"
    assert parameter_exists(env, parameter)
    queued = [m["body"] for m in env.sqs.sent]
    dispatched = dispatch_queued(client, env)
    [build] = env.codebuild.builds
    variables = contract.by_name(build["variables"])
    assert variables[contract.SOURCE_TOKEN]["value"] == parameter
    assert contract.FALLBACK_TOKEN not in variables
    # GHCR logs the App's installation token in and denies it this private package (FACTS.md §3)
    deny_app_tokens(env, ghcr)
    installation_parameter = variables[contract.INSTALLATION_TOKEN]["value"]
    installation_token = env.github.token(env.boto("ssm").get_parameter(
        Name=installation_parameter, WithDecryption=True)["Parameter"]["Value"])
    assert installation_token is not None and not installation_token.revoked
    with pytest.raises(skopeo.SkopeoError, match="403"):
        skopeo.digest(f"{source}@{pushed.digest}", Credential("x-access-token", installation_token.value))

    run: FinishedRun = run_build(build, env.boto("ssm"), env.boto("secretsmanager"), ghcr, tmp_path)
    assert run.status == "SUCCEEDED", run.report
    assert run.revoke_exit == 0
    stored = json.loads(bucket_objects(env)[report_store.report_key(build["id"]) or ""])
    assert stored == run.report
    invoked = client.lambda_.invoke("on_build_state", run.event)

    status = client.http.get(f"/github/handoff/{handoff_id}",
                             headers={"Authorization": f"Bearer {issuer.mint(AUDIENCE)}"})
    body = json.loads(status.body)
    dest = f"{moto_ecr.host}/ghcr/octo-org/{package}"
    assert status.status_code == 200 and body["status"] == "succeeded", body
    assert body["image"] == f"{dest}@{pushed.digest}"
    assert sorted(body["tags"]) == sorted(TAGS)
    assert body["reason"] == "" and body["bytes_moved"] > 0
    # skopeo, the oracle: the index and every platform read back with the same digests, under both tags
    assert skopeo.manifest_tree(f"{dest}@{pushed.digest}", moto_ecr.credential) == \
        skopeo.manifest_tree(f"{source}@{pushed.digest}", job_token) == [pushed.digest, *pushed.child_digests]
    assert sorted(skopeo.list_tags(dest, moto_ecr.credential)) == sorted(TAGS)

    # the job token: its parameter is gone, it was never revoked (nor even sent to be), and it still pulls
    assert not parameter_exists(env, parameter) and not parameter_exists(env, installation_parameter)
    assert revocations.tokens and job_token.password not in revocations.tokens
    assert installation_token.revoked
    assert skopeo.digest(f"{source}@{pushed.digest}", job_token) == pushed.digest

    # ...and it is in nothing the App or the build emitted
    captured = capfd.readouterr()
    places = {"JSON logs": json_logs.text(), "stdout": captured.out, "stderr": captured.err, "log records":
              caplog.text, "queue messages": json.dumps(queued), "report": json.dumps(run.report),
              "PLAINTEXT build variables": json.dumps([v for v in build["variables"] if v["type"] == "PLAINTEXT"]),
              "state event": json.dumps(run.event), "route answers": answer.body.decode() + status.body.decode(),
              "handler results": repr(dispatched) + repr(invoked.payload), **bucket_objects(env)}
    assert json_logs.find("hand-off queued") and json_logs.find("build finished")  # the capture saw the flow
    assert leaks(job_token.password, places) == []


def test_the_registry_package_event_of_a_digest_a_hand_off_mirrored_starts_no_second_build(
        client: Any, private_world: AppEnv, ghcr: GhcrStandin, issuer: OidcIssuer, json_logs: Any,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    open_hand_offs(monkeypatch, issuer, AUDIENCE)
    env = private_world
    package, handoff_id, pushed, _, run = handed_off_and_built(client, env, ghcr, issuer, "octo-org/*", tmp_path)
    client.lambda_.invoke("on_build_state", run.event)
    assert run.status == "SUCCEEDED", run.report

    headers, body = delivery_for(package, pushed.digest, TAGS[0])  # GitHub's event for the same push, arriving now
    assert client.http.post("/github/webhook", headers=headers, body=body).status_code == 202
    dispatch_queued(client, env)
    assert len(env.codebuild.calls) == 1  # the hand-off's build only
    [skipped] = json_logs.find("sync skipped")
    assert skipped["code"] == "handoff_mirrors" and handoff_id in skipped["reason"]
    assert [t for t in env.github.tokens if not t.revoked] == []  # the event's unused installation token too
    status = client.http.get(f"/github/handoff/{handoff_id}",
                             headers={"Authorization": f"Bearer {issuer.mint(AUDIENCE)}"})
    assert json.loads(status.body)["status"] == "succeeded"


def test_a_job_token_ghcr_denies_ends_the_hand_off_failed_with_a_cause_that_holds_no_token(
        client: Any, private_world: AppEnv, ghcr: GhcrStandin, issuer: OidcIssuer, revocations: RevocationLog,
        json_logs: Any, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    open_hand_offs(monkeypatch, issuer, AUDIENCE)
    env = private_world
    # a job without Actions access to this package
    package, handoff_id, pushed, job_token, run = handed_off_and_built(client, env, ghcr, issuer, "other-org/*",
                                                                       tmp_path)
    client.lambda_.invoke("on_build_state", run.event)

    assert run.status == "FAILED"
    status = client.http.get(f"/github/handoff/{handoff_id}",
                             headers={"Authorization": f"Bearer {issuer.mint(AUDIENCE)}"})
    body = json.loads(status.body)
    assert body["status"] == "failed" and "denied" in body["reason"] and body["image"].endswith(pushed.digest)
    # the cause names the job's token and what the tenant can do about it, not an operator's PAT
    assert "workflow job token" in body["reason"] and "Manage Actions access" in body["reason"]
    assert env.token_parameters() == [] and job_token.password not in revocations.tokens
    captured = capfd.readouterr()
    places = {"JSON logs": json_logs.text(), "stdout": captured.out, "stderr": captured.err,
              "report": json.dumps(run.report), "status": status.body.decode(), **bucket_objects(env)}
    assert leaks(job_token.password, places) == []

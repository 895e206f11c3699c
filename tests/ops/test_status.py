"""`ghcr2ecr status` and `retry-dead-letters` against a stage deployed on moto.

moto has no CodeBuild builds with overrides or failures and no StartMessageMoveTask (docs/FACTS.md §9), so
those two clients are botocore Stubbers answering in the services' own shapes; everything else is moto.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib import cli
from chalicelib.build.job import BuildJob, Target
from chalicelib.build.run_job import job_report, package_result
from chalicelib.dispatch.handler import build_variables
from chalicelib.handoff import record as handoffs
from chalicelib.jobs import Selection
from chalicelib.sync.report import Report
from chalicelib.ops.deploy import Aws
from chalicelib.ops.status import EXIT_ATTENTION, EXIT_OK, EXIT_UNKNOWN, Clients, retry_dead_letters, status
from standins.aws import ACCOUNT_ID, REGION
from tests.support.ops_fixtures import MOTO_CFN, FakeChalice, FakeInstaller, copy_project, outputs, run_deploy

pytestmark = MOTO_CFN
NOW = datetime.now(timezone.utc).replace(microsecond=0)
DIGEST = "sha256:" + "ab" * 32
PROJECT = "ghcr2ecr-dev-copy"


TARGET = Target(package="octo-org/app", source="ghcr.io/octo-org/app", dest=f"{ACCOUNT_ID}.dkr.ecr.{REGION}."
                "amazonaws.com/ghcr/octo-org/app", owner_id=1001, repository="app", tags=None, signatures=True)


def job_for(tag: str) -> BuildJob:
    """The build job dispatch makes for octo-org/app's event naming `tag` on DIGEST."""
    return BuildJob("webhook", "delivery-1", 77, "octo-org", Selection(DIGEST, tag), (TARGET,))


def build_record(uuid: str, status: str, minutes_ago: int, *, tag: str = "v1.2.3", phases: list | None = None
                 ) -> dict[str, Any]:
    """A BatchGetBuilds record as CodeBuild returns it for a build dispatch started, with dispatch's own variables."""
    started = NOW - timedelta(minutes=minutes_ago)
    settings = SimpleNamespace(github_api_url="https://api.github.com")
    variables = build_variables(settings, job_for(tag), "/ghcr2ecr/tokens/x/y", None)  # type: ignore[arg-type]
    return {
        "id": f"{PROJECT}:{uuid}", "arn": f"arn:aws:codebuild:{REGION}:{ACCOUNT_ID}:build/{PROJECT}:{uuid}",
        "buildStatus": status, "startTime": started, "endTime": started + timedelta(seconds=42),
        "projectName": PROJECT, "phases": phases or [],
        "environment": {"type": "LINUX_LAMBDA_CONTAINER", "image": "aws/codebuild/x", "computeType": "BUILD_LAMBDA_1GB",
                        "environmentVariables": variables},
    }


def codebuild_answering(*records: dict[str, Any]) -> Any:
    """A CodeBuild client whose list and batch-get answer `records` (newest first), checking the requests."""
    client = boto3.client("codebuild", region_name=REGION)
    stub = Stubber(client)
    ids = [record["id"] for record in records]
    stub.add_response("list_builds_for_project", {"ids": ids} if ids else {},
                      {"projectName": PROJECT, "sortOrder": "DESCENDING"})
    if ids:
        stub.add_response("batch_get_builds", {"builds": list(reversed(records))}, {"ids": ids})
    stub.activate()
    return client


@pytest.fixture()
def deployed(project: Path, aws: Aws, installer: FakeInstaller) -> Path:
    """Stage dev deployed on moto, with an App id in the checkout."""
    data = json.loads((project / ".chalice" / "config.json").read_text())
    data["stages"]["dev"]["environment_variables"]["GITHUB_APP_ID"] = "31337"
    (project / ".chalice" / "config.json").write_text(json.dumps(data))
    assert run_deploy(project, aws, installer, FakeChalice(), []) == 0
    return project


def clients(codebuild: Any, sqs: Any = None) -> Clients:
    """Moto clients, with the given CodeBuild (and SQS) client."""
    return Clients(boto3.client("cloudformation"), sqs or boto3.client("sqs"), codebuild, boto3.client("cloudwatch"),
                   boto3.client("s3"), boto3.client("ssm"), region=REGION)


def run_status(project: Path, codebuild: Any, builds: int = 10) -> tuple[int, list[str]]:
    """Run status for stage dev; return its exit code and lines."""
    lines: list[str] = []
    code = status(argparse.Namespace(stage="dev", builds=builds), project_dir=project, clients=clients(codebuild),
                  say=lines.append, now=NOW)
    return code, lines


def run_job_report(tag: str, status: str, reason: str, **fields: Any) -> dict[str, Any]:
    """What `ghcr2ecr run-job --report` writes for job_for(tag), its one sync report holding `fields`."""
    sync = Report(source=TARGET.source, destination=TARGET.dest, **fields).to_dict()
    return job_report(job_for(tag), [package_result(TARGET, status, reason, sync)])


def put_report(aws: Aws, uuid: str, report: dict[str, Any]) -> None:
    """Store a build's report where the build's `store-report` step puts it."""
    bucket = outputs(aws)["ReportBucketName"]
    aws.s3.put_object(Bucket=bucket, Key=f"reports/{PROJECT}/{uuid}.json", Body=json.dumps(report).encode())


def test_a_working_stage_shows_its_builds_and_last_delivery_and_exits_0(deployed: Path, aws: Aws) -> None:
    put_report(aws, "b2", run_job_report("v1.2.3", "synced", "copied", tags_set=["v1.2.3", "latest"],
                                         tags_unchanged=["v1"]))
    boto3.client("cloudwatch").put_metric_data(Namespace="AWS/Lambda", MetricData=[{
        "MetricName": "Invocations", "Dimensions": [{"Name": "FunctionName", "Value": "ghcr2ecr-dev"}],
        "Timestamp": NOW - timedelta(minutes=12), "Value": 3, "Unit": "Count"}])
    code, lines = run_status(deployed, codebuild_answering(build_record("b2", "SUCCEEDED", 5),
                                                           build_record("b1", "SUCCEEDED", 60, tag="v1.2.2")))
    text = "\n".join(lines)
    assert code == EXIT_OK and lines[-1] == "status: ok"
    assert "sync queue:    0 waiting, 0 being dispatched" in text and "dead letters:  0" in text
    [newest, older] = [line for line in lines if "ghcr.io/octo-org/app" in line]
    assert "SUCCEEDED" in newest and "42 s" in newest and DIGEST[:19] in newest
    assert "v1.2.3,latest,v1" in newest  # the tags the build's report says it set or found in place
    assert older.rstrip().endswith("v1.2.2")  # no report: the tag the event named
    assert "  redeliveries:  redeliver_failed has not run yet" in lines
    [delivery] = [line for line in lines if "last delivery" in line]
    assert delivery.startswith("  last delivery: in the 5 minutes from ") and delivery.endswith(" UTC")


def test_dead_letters_make_status_exit_1_and_say_what_to_run(deployed: Path, aws: Aws) -> None:
    boto3.client("sqs").send_message(QueueUrl=outputs(aws)["DeadLetterQueueUrl"], MessageBody="{}",
                                     MessageGroupId="g", MessageDeduplicationId="d")
    code, lines = run_status(deployed, codebuild_answering())
    assert code == EXIT_ATTENTION
    assert any("dead letters:  1" in line and "ghcr2ecr retry-dead-letters --stage dev" in line for line in lines)
    assert lines[-1] == "status: needs attention: 1 dead letter(s)"
    assert any("none in the last 14 days" in line for line in lines)


def test_a_failed_latest_build_exits_1_with_its_one_line_cause(deployed: Path, aws: Aws) -> None:
    put_report(aws, "f2", run_job_report("v1.2.3", "failed", "denied", errors=[
        "access to octo-org/app denied (tried: installation token, anonymous); make the package public, or\n provide "
        "a credential"]))
    phases = [{"phaseType": "BUILD", "phaseStatus": "FAILED", "contexts": [
        {"statusCode": "COMMAND_EXECUTION_ERROR", "message": "Error while executing command: ghcr2ecr sync. Reason: "
                                                             "exit status 1"}]}]
    code, lines = run_status(deployed, codebuild_answering(build_record("f2", "FAILED", 1, phases=phases),
                                                           build_record("f1", "FAILED", 2, phases=phases),
                                                           build_record("s0", "SUCCEEDED", 3)))
    assert code == EXIT_ATTENTION and lines[-1] == "status: needs attention: the latest build FAILED"
    failed = [line for line in lines if "FAILED" in line and "ghcr.io" in line]
    assert failed[0].endswith("access to octo-org/app denied (tried: installation token, anonymous); make the "
                              "package public, or provide a credential")
    assert failed[1].endswith("BUILD: Error while executing command: ghcr2ecr sync. Reason: exit status 1")


def test_a_build_still_running_does_not_hide_the_last_finished_one(deployed: Path) -> None:
    code, _ = run_status(deployed, codebuild_answering(build_record("r", "IN_PROGRESS", 0),
                                                       build_record("f", "FAILED", 1)))
    assert code == EXIT_ATTENTION


def test_a_stage_not_deployed_exits_2(project: Path, aws: Aws) -> None:
    code, lines = run_status(project, codebuild_answering())
    assert code == EXIT_UNKNOWN and "not deployed" in lines[0]


def test_status_works_from_a_checkout_that_never_deployed(deployed: Path, tmp_path: Path) -> None:
    code, lines = run_status(copy_project(tmp_path / "elsewhere"), codebuild_answering())
    assert code == EXIT_OK and not [line for line in lines if "GitHub App" in line]  # the App id came from SSM


def test_retry_dead_letters_starts_sqss_own_redrive_back_to_the_sync_queue(deployed: Path, aws: Aws) -> None:
    stack = outputs(aws)
    sqs = boto3.client("sqs")
    stub = Stubber(sqs)
    stub.add_response("get_queue_attributes", {"Attributes": {"ApproximateNumberOfMessages": "3",
                                                              "ApproximateNumberOfMessagesNotVisible": "0"}})
    stub.add_response("start_message_move_task", {"TaskHandle": "eyJ0YXNrSWQiOiJkYTk2In0="},
                      {"SourceArn": stack["DeadLetterQueueArn"], "DestinationArn": stack["SyncQueueArn"]})
    lines: list[str] = []
    with stub:
        assert retry_dead_letters(argparse.Namespace(stage="dev"), project_dir=deployed,
                                  clients=clients(codebuild_answering(), sqs), say=lines.append) == EXIT_OK
    stub.assert_no_pending_responses()
    assert "moving 3 dead letter(s) back to ghcr2ecr-dev-sync.fifo" in lines[0]


def test_retry_dead_letters_with_none_does_nothing(deployed: Path) -> None:
    lines: list[str] = []
    assert retry_dead_letters(argparse.Namespace(stage="dev"), project_dir=deployed,
                              clients=clients(codebuild_answering()), say=lines.append) == EXIT_OK
    assert lines == ["no dead letters in ghcr2ecr-dev-sync-dlq.fifo: nothing to retry"]


def test_the_status_command_reads_the_environments_aws(deployed: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # moto's CloudFormation skips the project (docs/FACTS.md §9): create it as the stack would, on EC2 compute.
    boto3.client("codebuild").create_project(
        name=PROJECT, source={"type": "S3", "location": "bucket/bundles/x.zip"}, artifacts={"type": "NO_ARTIFACTS"},
        environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/amazonlinux-x86_64-standard:5.0",
                     "computeType": "BUILD_GENERAL1_SMALL"}, serviceRole=f"arn:aws:iam::{ACCOUNT_ID}:role/copy")
    monkeypatch.chdir(deployed)
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # AWS_REGION alone is enough
    assert cli.main(["status", "--stage", "dev"]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"stage dev in {REGION}" in out and out.splitlines()[-1] == "status: ok"


def test_status_shows_what_redeliver_failed_saved_for_the_stage(deployed: Path, aws: Aws) -> None:
    name = json.loads((deployed / ".chalice" / "config.json").read_text())["stages"]["dev"]["environment_variables"][
        "REDELIVERY_STATE_PARAMETER"]
    aws.ssm.put_parameter(Name=name, Type="String", Value=json.dumps({"since": 1.0, "tries": {"g1": 1, "g2": 2}}))
    _, lines = run_status(deployed, codebuild_answering())
    [line] = [line for line in lines if line.startswith("  redeliveries:")]
    assert "last saved its state" in line and line.endswith("retrying 2 failed delivery(s)")


def put_handoff(aws: Aws, number: int, status: str, reason: str = "") -> handoffs.Handoff:
    """Store hand-off `number` (a later number changed later) with its digest marker, as the App keeps them."""
    bucket = outputs(aws)["ReportBucketName"]
    handoff = handoffs.Handoff(
        id=f"{number:032x}", repository_id=2001, repository="octo-org/app", owner_id=1001, owner="octo-org",
        package="app", digest="sha256:" + f"{number:02x}" * 32, status=status, reason=reason,
        created=NOW.timestamp() - 600 + number, updated=NOW.timestamp() - 600 + number)
    aws.s3.put_object(Bucket=bucket, Key=handoffs.record_key(handoff.id), Body=handoff.to_json())
    aws.s3.put_object(Bucket=bucket, Key=handoffs.digest_key(1001, "app", handoff.digest), Body=handoff.id.encode())
    return handoff


def test_status_lists_the_newest_hand_offs_from_their_records_with_id_repository_image_status_and_reason(
        deployed: Path, aws: Aws) -> None:
    made = [put_handoff(aws, number, "succeeded") for number in range(1, 5)]
    made.append(put_handoff(aws, 5, "failed", "GHCR2ECR_HANDOFF is deny: this package accepts no hand-off"))
    made += [put_handoff(aws, 6, "running"), put_handoff(aws, 7, "queued")]
    code, lines = run_status(deployed, codebuild_answering())
    assert code == EXIT_OK  # a hand-off's outcome is the tenant's to act on: it never fails status
    start = lines.index("  hand-offs:     the last 5 of 7 within 30 days, newest first")
    shown = lines[start + 1:start + 6]
    assert [line.split()[2] for line in shown] == [h.id for h in reversed(made)][:5]  # newest first
    queued, running, failed = shown[0], shown[1], shown[2]
    assert queued.endswith(f"  octo-org/app  app@{made[6].digest[:19]}  queued")
    assert running.endswith("  running")
    assert failed.endswith("  failed  GHCR2ECR_HANDOFF is deny: this package accepts no hand-off")
    assert not [line for line in lines if "digests" in line]  # the digest markers are not records


def test_status_says_when_no_hand_off_happened(deployed: Path) -> None:
    _, lines = run_status(deployed, codebuild_answering())
    assert "  hand-offs:     none in the last 30 days" in lines

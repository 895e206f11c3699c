"""`ghcr2ecr deploy` / `destroy` against a moto server, with `chalice` replaced by a recording fake.

moto's CloudFormation creates the queues, bucket, role and log group but skips AWS::CodeBuild::Project
(an unsupported type, with a warning), so the project itself is checked by cfn-lint in test_infra.py.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import zipfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.config import Settings
from chalicelib.ops import bundle as bundles
from chalicelib.ops.deploy import Aws, delete_parameters_under, destroy
from chalicelib.ops.stack import StackError, SupportStack
from standins.aws import ACCOUNT_ID, REGION
from tests.support.ops_fixtures import (
    API_URL, MOTO_CFN, PINS, ROOT, FakeChalice, FakeInstaller, args, config, outputs, parameters, run_deploy, stack,
)
pytestmark = MOTO_CFN


# ---- deploy ----------------------------------------------------------------------------------------
def test_deploy_creates_the_stack_and_writes_its_outputs_into_the_stage(
    project: Path, aws: Aws, installer: FakeInstaller
) -> None:
    assert run_deploy(project, aws, installer, FakeChalice(), []) == 0
    env = config(project)["stages"]["dev"]["environment_variables"]
    assert env["SYNC_QUEUE_URL"] == outputs(aws)["SyncQueueUrl"]
    assert env["SYNC_QUEUE_URL"].endswith("/ghcr2ecr-dev-sync.fifo")
    assert env["SYNC_QUEUE_NAME"] == "ghcr2ecr-dev-sync.fifo"
    assert env["CODEBUILD_PROJECT"] == "ghcr2ecr-dev-copy"
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=env["SYNC_QUEUE_URL"],
                                                          AttributeNames=["All"])["Attributes"]
    assert attributes["FifoQueue"] == "true" and attributes["ContentBasedDeduplication"] == "false"
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].endswith("ghcr2ecr-dev-sync-dlq.fifo")


def test_deploy_keeps_the_rest_of_the_chalice_config(project: Path, aws: Aws, installer: FakeInstaller) -> None:
    before = config(project)
    assert run_deploy(project, aws, installer, FakeChalice(), []) == 0
    after = config(project)
    assert after["environment_variables"] == before["environment_variables"]
    assert after["stages"]["dev"]["environment_variables"]["GITHUB_APP_ID"] == \
        before["stages"]["dev"]["environment_variables"]["GITHUB_APP_ID"]
    assert after["stages"]["dev"]["lambda_functions"]["dispatch"]["reserved_concurrency"] == 10


def test_deploy_uploads_the_bundle_under_its_content_hash_and_points_the_project_at_it(
    project: Path, aws: Aws, installer: FakeInstaller
) -> None:
    assert run_deploy(project, aws, installer, FakeChalice(), []) == 0
    bucket, key = outputs(aws)["CodeBundleBucketName"], parameters(aws)["CodeBundleKey"]
    data = aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert key == bundles.Bundle(data, bundles.hashlib.sha256(data).hexdigest(), PINS).key
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert {"buildspec/buildspec.yml", "chalicelib/cli.py", "vendor/httpx/__init__.py"} <= set(names)


def test_deploy_runs_chalice_deploy_with_the_names_app_py_reads_at_import(
    project: Path, aws: Aws, installer: FakeInstaller
) -> None:
    chalice = FakeChalice()
    assert run_deploy(project, aws, installer, chalice, []) == 0
    assert len(chalice.calls) == 2  # the new API's URL, known after the first, is the hand-off audience
    for command, cwd, env in chalice.calls:
        assert command[1:] == ["deploy", "--stage", "dev"]
        assert cwd == project
        assert env["SYNC_QUEUE_NAME"] == "ghcr2ecr-dev-sync.fifo"
        assert env["CODEBUILD_PROJECT"] == "ghcr2ecr-dev-copy"


def test_deploy_writes_policies_with_this_accounts_exact_arns(
    project: Path, aws: Aws, installer: FakeInstaller
) -> None:
    assert run_deploy(project, aws, installer, FakeChalice(), []) == 0
    stage = config(project)["stages"]["dev"]
    filename = stage["lambda_functions"]["dispatch"]["iam_policy_file"]
    document = json.loads((project / ".chalice" / filename).read_text())
    resources = {r for statement in document["Statement"] for r in statement["Resource"]}
    assert f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:ghcr2ecr-dev-sync.fifo" in resources
    # S3 ARNs name no region or account (bucket names are global): the report bucket's, written by deploy
    assert all(f":{REGION}:{ACCOUNT_ID}:" in r for r in resources if not r.startswith("arn:aws:s3:::"))
    bucket = outputs(aws)["ReportBucketName"]
    assert f"arn:aws:s3:::{bucket}/handoffs/*" in resources
    assert (project / ".chalice" / stage["iam_policy_file"]).is_file()


def test_running_deploy_again_is_safe_and_changes_nothing(project: Path, aws: Aws, installer: FakeInstaller) -> None:
    chalice = FakeChalice()
    assert run_deploy(project, aws, installer, chalice, []) == 0
    first_config, first_stack = config(project), parameters(aws)
    lines: list[str] = []
    assert run_deploy(project, aws, installer, chalice, lines) == 0
    assert config(project) == first_config
    assert parameters(aws) == first_stack
    assert any("already holds this bundle" in line for line in lines)
    assert len(installer.runs) == 1  # the vendored dependencies were reused
    assert len(chalice.calls) == 3  # the first deploy ran chalice twice (a new API's URL), the second once
    objects = aws.s3.list_objects_v2(Bucket=outputs(aws)["CodeBundleBucketName"], Prefix="bundles/")["Contents"]
    assert len(objects) == 1


def test_ec2_compute_is_passed_to_the_stack(project: Path, aws: Aws, installer: FakeInstaller) -> None:
    assert run_deploy(project, aws, installer, FakeChalice(), [], compute="ec2") == 0
    assert parameters(aws)["Compute"] == "ec2"
    assert run_deploy(project, aws, installer, FakeChalice(), [], compute=None) == 0  # kept when not asked
    assert parameters(aws)["Compute"] == "ec2"
    assert run_deploy(project, aws, installer, FakeChalice(), [], compute="lambda") == 0
    assert parameters(aws)["Compute"] == "lambda"


def test_queue_visibility_follows_six_times_the_dispatch_timeout(
    project: Path, aws: Aws, installer: FakeInstaller
) -> None:
    data = config(project)
    data["stages"]["dev"]["lambda_functions"]["dispatch"]["lambda_timeout"] = 120
    (project / ".chalice" / "config.json").write_text(json.dumps(data))
    assert run_deploy(project, aws, installer, FakeChalice(), []) == 0
    url = config(project)["stages"]["dev"]["environment_variables"]["SYNC_QUEUE_URL"]
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    assert attributes["Attributes"]["VisibilityTimeout"] == "720"


def test_a_new_stage_gets_its_own_stack_names_and_policies(project: Path, aws: Aws, installer: FakeInstaller) -> None:
    lines: list[str] = []
    assert run_deploy(project, aws, installer, FakeChalice(), lines, stage="prod") == 0
    stage = config(project)["stages"]["prod"]
    assert stage["environment_variables"]["SYNC_QUEUE_NAME"] == "ghcr2ecr-prod-sync.fifo"
    assert stage["environment_variables"]["CODEBUILD_PROJECT"] == "ghcr2ecr-prod-copy"
    assert stage["lambda_functions"]["api_handler"]["iam_policy_file"] == "policy-prod-api_handler.json"
    assert (project / ".chalice" / "policy-prod-dispatch.json").is_file()
    assert any("stage prod is new" in line for line in lines)


def test_deploy_prints_each_step_and_the_webhook_url(project: Path, aws: Aws, installer: FakeInstaller) -> None:
    lines: list[str] = []
    assert run_deploy(project, aws, installer, FakeChalice(), lines) == 0
    steps = [line.split(" ")[0] for line in lines if line[:1].isdigit()]
    assert steps == ["1/6", "2/6", "3/6", "4/6", "5/6", "6/6"]
    assert f"Webhook URL: {API_URL}github/webhook" in lines
    assert any("create-app" in line for line in lines)  # no App id yet: says what to do


def test_a_failing_chalice_deploy_fails_the_command(project: Path, aws: Aws, installer: FakeInstaller) -> None:
    lines: list[str] = []
    assert run_deploy(project, aws, installer, FakeChalice(status=2), lines) == 1
    assert any("chalice deploy failed" in line for line in lines)


# ---- the workflow hand-off: HANDOFF_AUDIENCE and the step tenants add --------------------------------
OPERATORS_AUDIENCE = "https://mirror.example.com/"


class AudienceSeeingChalice(FakeChalice):
    """Also records, at each chalice command, the HANDOFF_AUDIENCE the stage's Lambdas would get."""

    def __init__(self, status: int = 0) -> None:
        super().__init__(status)
        self.audiences: list[str | None] = []

    def __call__(self, command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> int:
        stage = command[command.index("--stage") + 1]
        variables = json.loads((cwd / ".chalice" / "config.json").read_text())["stages"][stage]["environment_variables"]
        self.audiences.append(variables.get("HANDOFF_AUDIENCE"))
        return super().__call__(command, cwd, env)


def set_audience(project: Path, value: str) -> None:
    """Set HANDOFF_AUDIENCE in the clone's stage dev, as an operator would."""
    data = config(project)
    data["stages"]["dev"]["environment_variables"]["HANDOFF_AUDIENCE"] = value
    (project / ".chalice" / "config.json").write_text(json.dumps(data))


def action_inputs(url: str) -> Any:
    """Return the action's checked inputs for `url` typed as its `url` input (audience left to its default)."""
    spec = importlib.util.spec_from_file_location("handoff_action", ROOT / "action" / "handoff.py")
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script  # dataclasses look their module up while the class is made
    spec.loader.exec_module(script)
    return script.read_inputs({"INPUT_URL": url, "INPUT_IMAGE": "ghcr.io/octo-org/app@sha256:" + "a" * 64,
                               "INPUT_TOKEN": "ghs_job"})


def test_the_first_deploy_makes_the_api_url_chalice_records_the_hand_off_audience_and_deploys_it(
    project: Path, aws: Aws, installer: FakeInstaller
) -> None:
    chalice = AudienceSeeingChalice()
    lines: list[str] = []
    assert run_deploy(project, aws, installer, chalice, lines) == 0
    assert chalice.audiences == [None, API_URL]  # a new API has its URL only after its first chalice deploy
    env = config(project)["stages"]["dev"]["environment_variables"]
    assert env["HANDOFF_AUDIENCE"] == API_URL
    assert "OIDC_ISSUER" not in env  # GitHub's issuer, the default, unless the operator configures another
    assert any(line.startswith("  HANDOFF_AUDIENCE=" + API_URL) and "again" in line for line in lines)
    assert run_deploy(project, aws, installer, chalice, lines) == 0
    assert chalice.audiences[2:] == [API_URL]  # known from then on: one chalice deploy, already with it
    assert "  ID tokens are verified against OIDC_ISSUER=https://token.actions.githubusercontent.com" in lines


def test_deploy_prints_the_url_and_step_whose_default_audience_is_exactly_the_one_the_app_checks(
    project: Path, aws: Aws, installer: FakeInstaller
) -> None:
    lines: list[str] = []
    assert run_deploy(project, aws, installer, FakeChalice(), lines) == 0
    assert f"Hand-off URL (the action's `url`, exactly so): {API_URL}" in lines
    step = lines[lines.index(f"Hand-off URL (the action's `url`, exactly so): {API_URL}"):]
    assert any("uses: " in line and "/ghcr2ecr@v1" in line for line in step)
    [url] = [line.split("url: ", 1)[1] for line in step if line.strip().startswith("url: ")]
    assert not [line for line in step if line.strip().startswith("audience: ")]  # the default: `url`
    inputs = action_inputs(url)
    audience = config(project)["stages"]["dev"]["environment_variables"]["HANDOFF_AUDIENCE"]
    assert inputs.audience == audience == Settings.from_env({
        "GITHUB_APP_ID": "1", "SYNC_QUEUE_URL": "q", "CODEBUILD_PROJECT": "p", "HANDOFF_AUDIENCE": audience,
    }).handoff_audience
    assert inputs.url + "/github/handoff" == API_URL + "github/handoff"  # the route, next to the webhook


def test_an_audience_the_operator_set_is_kept_and_named_in_the_step(
    project: Path, aws: Aws, installer: FakeInstaller
) -> None:
    set_audience(project, OPERATORS_AUDIENCE)  # e.g. a custom domain in front of the API
    chalice = AudienceSeeingChalice()
    lines: list[str] = []
    assert run_deploy(project, aws, installer, chalice, lines) == 0
    assert chalice.audiences == [OPERATORS_AUDIENCE]
    assert config(project)["stages"]["dev"]["environment_variables"]["HANDOFF_AUDIENCE"] == OPERATORS_AUDIENCE
    assert f"          audience: {OPERATORS_AUDIENCE}" in lines and f"          url: {API_URL}" in lines
    assert destroy(args(command="destroy"), project_dir=project, aws=aws, runner=chalice, say=lines.append) == 0
    assert config(project)["stages"]["dev"]["environment_variables"]["HANDOFF_AUDIENCE"] == OPERATORS_AUDIENCE


@pytest.mark.parametrize("stale", [API_URL.rstrip("/"), "https://old9876.execute-api.us-east-1.amazonaws.com/api/"])
def test_an_api_url_audience_follows_the_url_chalice_records(
    project: Path, aws: Aws, installer: FakeInstaller, stale: str
) -> None:
    set_audience(project, stale)  # typed without the trailing slash, or the URL of an API since deleted
    chalice = AudienceSeeingChalice()
    assert run_deploy(project, aws, installer, chalice, []) == 0
    assert chalice.audiences == [stale, API_URL]
    assert config(project)["stages"]["dev"]["environment_variables"]["HANDOFF_AUDIENCE"] == API_URL


# ---- destroy ---------------------------------------------------------------------------------------
def test_destroy_removes_the_app_the_bucket_contents_and_the_stack(
    project: Path, aws: Aws, installer: FakeInstaller
) -> None:
    chalice = FakeChalice()
    assert run_deploy(project, aws, installer, chalice, []) == 0
    in_flight = "/ghcr2ecr/tokens/0f1e/9a8b"  # the prefix is shared: another stage's build may be reading it
    aws.ssm.put_parameter(Name=in_flight, Value="x", Type="SecureString")
    aws.ssm.put_parameter(Name="/ghcr2ecr/dev/github/private-key", Value="kept", Type="SecureString")
    lines: list[str] = []
    assert destroy(args(command="destroy"), project_dir=project, aws=aws, runner=chalice, say=lines.append) == 0
    assert chalice.calls[-1][0][1:] == ["delete", "--stage", "dev"]
    assert not [s for s in aws.cloudformation.describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"]
    assert boto3.client("sqs").list_queues().get("QueueUrls", []) == []
    names = sorted(p["Name"] for p in aws.ssm.describe_parameters()["Parameters"])
    # the App's credentials, the stage's recorded settings and fresh tokens are kept
    assert names == ["/ghcr2ecr/dev/deployment", "/ghcr2ecr/dev/github/private-key", in_flight]
    assert config(project)["stages"]["dev"]["environment_variables"]["HANDOFF_AUDIENCE"] == ""  # the API is gone
    assert [line.split(" ")[0] for line in lines if line[:1].isdigit()] == ["1/4", "2/4", "3/4", "4/4"]


def test_leftover_token_parameters_older_than_a_token_are_deleted(aws: Aws) -> None:
    for name in ("/ghcr2ecr/tokens/a/1", "/ghcr2ecr/tokens/b/2", "/ghcr2ecr/other"):
        aws.ssm.put_parameter(Name=name, Value="x", Type="SecureString")
    later = datetime.now(timezone.utc) + timedelta(minutes=61)
    assert delete_parameters_under(aws.ssm, "/ghcr2ecr/tokens") == (0, 2)
    assert delete_parameters_under(aws.ssm, "/ghcr2ecr/tokens", now=later) == (2, 0)
    assert [p["Name"] for p in aws.ssm.describe_parameters()["Parameters"]] == ["/ghcr2ecr/other"]


def test_destroy_without_a_deployment_is_harmless(project: Path, aws: Aws) -> None:
    lines: list[str] = []
    assert destroy(args(command="destroy"), project_dir=project, aws=aws, runner=FakeChalice(), say=lines.append) == 0
    assert "  no such stack" in lines


def test_destroy_stops_before_the_stack_when_chalice_delete_fails(
    project: Path, aws: Aws, installer: FakeInstaller
) -> None:
    assert run_deploy(project, aws, installer, FakeChalice(), []) == 0
    lines: list[str] = []
    assert destroy(args(command="destroy"), project_dir=project, aws=aws, runner=FakeChalice(status=1),
                   say=lines.append) == 1
    assert stack(aws)["StackStatus"].endswith("_COMPLETE")


# ---- CloudFormation states moto does not reach (botocore Stubber) ---------------------------------
def stubbed_stack() -> tuple[SupportStack, Stubber, list[str]]:
    client = boto3.client("cloudformation", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x",
                          endpoint_url="http://127.0.0.1:9")  # never contacted: every answer is stubbed
    lines: list[str] = []
    return SupportStack(client, "ghcr2ecr-dev-support", lines.append, poll_seconds=1), Stubber(client), lines


def described(status: str) -> dict[str, Any]:
    return {"Stacks": [{"StackName": "ghcr2ecr-dev-support", "StackStatus": status,
                        "CreationTime": "2026-01-01T00:00:00Z"}]}


MISSING = {"service_error_code": "ValidationError",
           "service_message": "Stack with id ghcr2ecr-dev-support does not exist"}


def test_a_failed_first_create_is_deleted_and_created_again() -> None:
    stack, stub, lines = stubbed_stack()
    stub.add_response("describe_stacks", described("ROLLBACK_COMPLETE"))
    stub.add_response("describe_stacks", described("ROLLBACK_COMPLETE"))  # delete(): does it exist?
    stub.add_response("delete_stack", {})
    stub.add_client_error("describe_stacks", **MISSING)  # delete waiter: gone
    stub.add_client_error("describe_stacks", **MISSING)  # after the wait
    stub.add_response("create_stack", {"StackId": "arn:stack"})
    stub.add_response("describe_stacks", described("CREATE_COMPLETE"))  # create waiter
    stub.add_response("describe_stacks", described("CREATE_COMPLETE"))  # after the wait
    with stub:
        assert stack.deploy("{}", {"Stage": "dev"}) == "created"
    stub.assert_no_pending_responses()
    assert any("ROLLBACK_COMPLETE" in line and "deleting it first" in line for line in lines)


def test_an_update_with_nothing_to_change_is_success() -> None:
    stack, stub, _ = stubbed_stack()
    stub.add_response("describe_stacks", described("UPDATE_COMPLETE"))
    stub.add_client_error("update_stack", service_error_code="ValidationError",
                          service_message="No updates are to be performed.")
    with stub:
        assert stack.deploy("{}", {"Stage": "dev"}) == "unchanged"


def test_a_failed_create_reports_the_failing_resources() -> None:
    stack, stub, _ = stubbed_stack()
    stub.add_client_error("describe_stacks", **MISSING)
    stub.add_response("create_stack", {"StackId": "arn:stack"})
    stub.add_response("describe_stacks", described("ROLLBACK_COMPLETE"))  # the waiter's failure state
    event = {"StackId": "arn:stack", "EventId": "1", "StackName": "ghcr2ecr-dev-support",
             "Timestamp": "2026-01-01T00:00:00Z", "LogicalResourceId": "CopyProject",
             "ResourceStatus": "CREATE_FAILED",
             "ResourceStatusReason": "Lambda compute is not available in this Region"}
    stub.add_response("describe_stack_events", {"StackEvents": [event]})
    with stub, pytest.raises(StackError, match="CopyProject: Lambda compute is not available"):
        stack.deploy("{}", {"Stage": "dev"})


def test_a_stack_busy_with_another_operation_is_left_alone() -> None:
    stack, stub, _ = stubbed_stack()
    stub.add_response("describe_stacks", described("UPDATE_IN_PROGRESS"))
    with stub, pytest.raises(StackError, match="UPDATE_IN_PROGRESS: wait"):
        stack.deploy("{}", {"Stage": "dev"})


# ---- the command line ------------------------------------------------------------------------------
def test_the_ghcr2ecr_commands_deploy_and_destroy_from_the_checkout(
    project: Path, aws: Aws, installer: FakeInstaller, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    from chalicelib import cli
    from chalicelib.ops import deploy as deploy_module

    chalice = FakeChalice()
    monkeypatch.chdir(project / "infra")  # any directory inside the checkout
    monkeypatch.setattr(deploy_module, "run_command", chalice)
    monkeypatch.setattr(bundles, "pip_install", installer)
    assert cli.main(["deploy", "--stage", "dev", "--compute", "ec2"]) == 0
    assert parameters(aws)["Compute"] == "ec2"
    assert cli.main(["destroy", "--stage", "dev"]) == 0
    assert [call[0][1] for call in chalice.calls] == ["deploy", "deploy", "delete"]
    out = capsys.readouterr().out
    assert "chalice deploy --stage dev" in out and "deleting stack ghcr2ecr-dev-support" in out


# ---- the code bundle -------------------------------------------------------------------------------
def test_bundle_holds_sync_code_buildspec_and_vendored_dependencies_only(
    project: Path, installer: FakeInstaller
) -> None:
    built = bundles.build_bundle(project, install=installer, pins=PINS)
    names = zipfile.ZipFile(io.BytesIO(built.data)).namelist()
    assert "buildspec/buildspec.yml" in names and "chalicelib/sync/engine.py" in names
    assert {"vendor/httpx/__init__.py", "vendor/h11/__init__.py", "vendor/PINNED.txt"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith("chalicelib/ops/")]  # operator tooling stays home
    assert {n.split("/")[0] for n in names} == {"chalicelib", "buildspec", "vendor"}


def test_bundle_is_reproducible_so_its_key_only_changes_with_its_content(
    project: Path, installer: FakeInstaller
) -> None:
    first = bundles.build_bundle(project, install=installer, pins=PINS)
    again = bundles.build_bundle(project, install=installer, pins=PINS)
    assert again.data == first.data and again.key == first.key
    (project / "chalicelib" / "sync.py").write_text("# changed\n")
    assert bundles.build_bundle(project, install=installer, pins=PINS).key != first.key


def test_bundle_without_a_buildspec_is_refused(project: Path, installer: FakeInstaller) -> None:
    (project / "buildspec" / "buildspec.yml").unlink()
    with pytest.raises(bundles.BundleError, match="buildspec.yml"):
        bundles.build_bundle(project, install=installer, pins=PINS)


def test_vendored_dependencies_are_exactly_the_installed_versions_for_the_builds_python() -> None:
    pins = bundles.pinned_requirements()
    names = {pin.split("==")[0] for pin in pins}
    assert {"httpx", "httpcore", "h11", "anyio", "idna", "certifi", "boto3", "botocore"} <= names
    assert not names & {"chalice", "githubkit", "moto", "pytest"}
    assert f"httpx=={bundles.metadata.version('httpx')}" in pins
    command = bundles.pip_command(pins, Path("/tmp/v"))
    assert {"--no-deps", "--only-binary=:all:", "--no-compile"} <= set(command)
    assert command[command.index("--python-version") + 1] == bundles.TARGET_PYTHON
    assert command[command.index("--target") + 1] == "/tmp/v"
    assert command[-len(pins):] == list(pins)

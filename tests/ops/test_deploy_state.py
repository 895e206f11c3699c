"""A stage's state lives in AWS: deploy from one checkout, update and destroy from another; stages side by side.

Against the shared moto server, with `chalice` replaced by FakeChalice (it writes and removes the record
`chalice deploy` keeps) and pip by FakeInstaller.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chalicelib.ops.deploy import Aws, destroy
from chalicelib.ops.state import record_key, state_parameter
from tests.support.ops_fixtures import (
    API_URL, MOTO_CFN, FakeChalice, FakeInstaller, args, config, copy_project, outputs, run_deploy,
)

pytestmark = MOTO_CFN


def set_stage_env(project: Path, stage: str, **values: str) -> None:
    """Edit a checkout's .chalice/config.json as an operator would."""
    data = config(project)
    data["stages"].setdefault(stage, {}).setdefault("environment_variables", {}).update(values)
    (project / ".chalice" / "config.json").write_text(json.dumps(data, indent=2))


def stage_env(project: Path, stage: str = "dev") -> dict[str, Any]:
    """Return the variables a checkout's stage sets."""
    return config(project)["stages"][stage]["environment_variables"]


class RecordSeen(FakeChalice):
    """A FakeChalice that also notes whether chalice's record of the stage was there when it ran."""

    def __init__(self) -> None:
        super().__init__()
        self.record_present: list[bool] = []
        self.stage_in_config: list[bool] = []

    def __call__(self, command: Any, cwd: Path, env: Any) -> int:
        stage = command[command.index("--stage") + 1]
        self.record_present.append((cwd / ".chalice" / "deployed" / f"{stage}.json").is_file())
        self.stage_in_config.append(stage in config(cwd)["stages"])
        return super().__call__(command, cwd, env)


def test_a_second_checkout_updates_and_destroys_what_the_first_deployed(
    tmp_path: Path, aws: Aws, installer: FakeInstaller
) -> None:
    first, second = copy_project(tmp_path / "laptop"), copy_project(tmp_path / "ci")
    set_stage_env(first, "prod", GITHUB_APP_ID="31337", GITHUB_APP_SLUG="ghcr2ecr-octo", ALLOWED_ACCOUNTS="octo-org")
    assert run_deploy(first, aws, installer, FakeChalice(), [], stage="prod") == 0
    bucket = outputs(aws, "prod")["CodeBundleBucketName"]
    assert aws.s3.get_object(Bucket=bucket, Key=record_key("prod"))["Body"].read()
    assert json.loads(aws.ssm.get_parameter(Name=state_parameter("ghcr2ecr", "prod"))["Parameter"]["Value"])[
        "environment_variables"]["GITHUB_APP_ID"] == "31337"

    # The second checkout has never seen stage prod: deploy fills it from AWS and updates the same API.
    chalice = RecordSeen()
    lines: list[str] = []
    assert run_deploy(second, aws, installer, chalice, lines, stage="prod") == 0
    assert chalice.record_present == [True]  # chalice updates the stage's API instead of creating another
    env = stage_env(second, "prod")
    assert (env["GITHUB_APP_ID"], env["GITHUB_APP_SLUG"], env["ALLOWED_ACCOUNTS"]) == ("31337", "ghcr2ecr-octo",
                                                                                      "octo-org")
    assert env["SYNC_QUEUE_URL"] == stage_env(first, "prod")["SYNC_QUEUE_URL"]
    assert f"Webhook URL: {API_URL}github/webhook" in lines
    assert not [line for line in lines if "create-app" in line]  # it knows the App exists

    # ... and a third checkout, never deployed from, destroys it.
    third, chalice = copy_project(tmp_path / "other"), RecordSeen()
    lines = []
    assert destroy(args(command="destroy", stage="prod"), project_dir=third, aws=aws, runner=chalice,
                   say=lines.append) == 0
    assert chalice.record_present == [True] and chalice.calls[0][0][1:] == ["delete", "--stage", "prod"]
    assert chalice.stage_in_config == [True]  # chalice delete reads the stage from the file
    assert chalice.calls[0][2]["SYNC_QUEUE_NAME"] == "ghcr2ecr-prod-sync.fifo"
    assert not [s for s in aws.cloudformation.describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"]
    kept = json.loads(aws.ssm.get_parameter(Name=state_parameter("ghcr2ecr", "prod"))["Parameter"]["Value"])
    assert kept["environment_variables"]["GITHUB_APP_ID"] == "31337"  # the App outlives the deployment
    assert kept["environment_variables"]["SYNC_QUEUE_URL"] == ""


def test_a_checkouts_own_values_win_over_the_recorded_ones(tmp_path: Path, aws: Aws, installer: FakeInstaller) -> None:
    first, second = copy_project(tmp_path / "a"), copy_project(tmp_path / "b")
    set_stage_env(first, "dev", GITHUB_APP_ID="7", ALLOWED_ACCOUNTS="octo-org")
    assert run_deploy(first, aws, installer, FakeChalice(), []) == 0
    set_stage_env(second, "dev", ALLOWED_ACCOUNTS="octo-org,acme")
    assert run_deploy(second, aws, installer, FakeChalice(), []) == 0
    assert stage_env(second)["ALLOWED_ACCOUNTS"] == "octo-org,acme" and stage_env(second)["GITHUB_APP_ID"] == "7"
    recorded = json.loads(aws.ssm.get_parameter(Name=state_parameter("ghcr2ecr", "dev"))["Parameter"]["Value"])
    assert recorded["environment_variables"]["ALLOWED_ACCOUNTS"] == "octo-org,acme"


def test_two_stages_in_one_account_get_their_own_app_parameters_and_policies(
    project: Path, aws: Aws, installer: FakeInstaller
) -> None:
    for stage in ("dev", "prod"):
        assert run_deploy(project, aws, installer, FakeChalice(), [], stage=stage) == 0
    names = {stage: (stage_env(project, stage)["GITHUB_PRIVATE_KEY_PARAMETER"],
                     stage_env(project, stage)["GITHUB_WEBHOOK_SECRET_PARAMETER"]) for stage in ("dev", "prod")}
    assert names == {"dev": ("/ghcr2ecr/dev/github/private-key", "/ghcr2ecr/dev/github/webhook-secret"),
                     "prod": ("/ghcr2ecr/prod/github/private-key", "/ghcr2ecr/prod/github/webhook-secret")}
    assert {stage: stage_env(project, stage)["REDELIVERY_STATE_PARAMETER"] for stage in ("dev", "prod")} == {
        "dev": "/ghcr2ecr/dev/redelivery/state", "prod": "/ghcr2ecr/prod/redelivery/state"}
    for stage, (_key, secret) in names.items():
        document = json.loads((project / ".chalice" / f"policy-{stage}-api_handler.json").read_text())
        resources = [r for statement in document["Statement"] for r in statement["Resource"]]
        assert [r for r in resources if ":parameter/" in r] == [  # its own secret, not the other stage's
            f"arn:aws:ssm:us-east-1:123456789012:parameter{secret}",
            "arn:aws:ssm:us-east-1:123456789012:parameter/ghcr2ecr/tokens/handoff/*"]  # the prefix both share


def test_a_stage_that_already_has_an_app_keeps_the_documented_default_names(
    project: Path, aws: Aws, installer: FakeInstaller
) -> None:
    set_stage_env(project, "dev", GITHUB_APP_ID="42")  # created before names were per stage
    assert run_deploy(project, aws, installer, FakeChalice(), []) == 0
    assert stage_env(project)["GITHUB_PRIVATE_KEY_PARAMETER"] == "/ghcr2ecr/github/private-key"
    assert stage_env(project)["GITHUB_WEBHOOK_SECRET_PARAMETER"] == "/ghcr2ecr/github/webhook-secret"


def test_names_configured_for_a_stage_or_at_the_top_level_are_kept(
    project: Path, aws: Aws, installer: FakeInstaller
) -> None:
    data = config(project)
    data["environment_variables"]["GITHUB_WEBHOOK_SECRET_PARAMETER"] = "/shared/webhook-secret"
    data["stages"]["dev"]["environment_variables"]["GITHUB_PRIVATE_KEY_PARAMETER"] = "/acme/key"
    (project / ".chalice" / "config.json").write_text(json.dumps(data))
    assert run_deploy(project, aws, installer, FakeChalice(), []) == 0
    assert stage_env(project)["GITHUB_PRIVATE_KEY_PARAMETER"] == "/acme/key"
    assert stage_env(project)["GITHUB_WEBHOOK_SECRET_PARAMETER"] == "/shared/webhook-secret"


def test_the_build_role_cannot_read_the_recorded_state() -> None:
    from tests.ops.test_infra import RESOURCES

    statements = RESOURCES["CopyRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    [objects] = [s for s in statements if s["Sid"] == "CodeBundleObjects"]
    assert objects["Resource"] == {"Fn::Sub": "${CodeBundleBucket.Arn}/bundles/*"}
    assert not record_key("prod").startswith("bundles/")

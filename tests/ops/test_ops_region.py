"""Every operator command finds the region where the AWS CLI does: AWS_REGION, AWS_DEFAULT_REGION, the profile."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from chalicelib import cli
from chalicelib.ops import bundle as bundles
from chalicelib.ops import deploy as deploy_module
from chalicelib.ops.deploy import Aws
from chalicelib.ops.project import NO_REGION, aws_session
from tests.support.ops_fixtures import MOTO_CFN, FakeChalice, FakeInstaller

pytestmark = MOTO_CFN


@pytest.fixture()
def no_region(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An environment with no region anywhere: no variables, empty AWS config files; returns the config path."""
    config = tmp_path / "aws-config"
    config.write_text("")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    return config


def test_aws_region_alone_is_honoured(no_region: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert boto3.session.Session().region_name is None  # what boto3 does by itself (docs/FACTS.md)
    assert aws_session().region_name == "eu-west-1"


def test_aws_region_wins_over_aws_default_region(no_region: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert aws_session().region_name == "eu-west-1"


def test_aws_default_region_alone_is_honoured(no_region: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert aws_session().region_name == "us-west-2"


def test_a_profiles_region_is_honoured(no_region: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_region.write_text("[profile ops]\nregion = ap-southeast-2\n")
    monkeypatch.setenv("AWS_PROFILE", "ops")
    assert aws_session().region_name == "ap-southeast-2"


def test_a_missing_profile_is_one_line_not_a_traceback(no_region: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nope")
    with pytest.raises(SystemExit, match="AWS_PROFILE"):
        aws_session()


@pytest.mark.parametrize("command", [["deploy"], ["destroy"], ["status"], ["retry-dead-letters"],
                                     ["create-app", "--no-browser"]])
def test_without_a_region_every_operator_command_stops_first(
    no_region: Path, command: list[str], project: Path, installer: FakeInstaller, monkeypatch: pytest.MonkeyPatch
) -> None:
    chalice = FakeChalice()
    monkeypatch.chdir(project)
    monkeypatch.setattr(deploy_module, "run_command", chalice)
    monkeypatch.setattr(bundles, "pip_install", installer)
    with pytest.raises(SystemExit) as stopped:
        cli.main(command)
    assert stopped.value.code == NO_REGION
    assert installer.runs == [] and chalice.calls == []  # nothing was built, chalice never ran


def test_deploy_with_only_aws_region_deploys_there_and_hands_chalice_the_region(
    aws: Aws, project: Path, installer: FakeInstaller, monkeypatch: pytest.MonkeyPatch
) -> None:
    chalice = FakeChalice()
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.chdir(project)
    monkeypatch.setattr(deploy_module, "run_command", chalice)
    monkeypatch.setattr(bundles, "pip_install", installer)
    assert cli.main(["deploy", "--stage", "dev"]) == 0
    assert len(chalice.calls) == 2  # the second with the new API's URL as HANDOFF_AUDIENCE
    for _, _, env in chalice.calls:
        assert env["AWS_DEFAULT_REGION"] == env["AWS_REGION"] == "eu-west-1"  # chalice's boto3 reads only the first
    stacks = boto3.client("cloudformation", region_name="eu-west-1").describe_stacks()["Stacks"]
    assert [s["StackName"] for s in stacks] == ["ghcr2ecr-dev-support"]

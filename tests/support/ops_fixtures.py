"""Fixtures for the operator commands: a project copy, `chalice` and pip replaced by recording fakes, moto clients.

moto's CloudFormation creates the queues, bucket, role and log group but skips AWS::CodeBuild::Project and
the S3 bucket policy (unsupported types, with a warning).
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.ops import bundle as bundles
from chalicelib.ops.deploy import Aws, deploy
from standins.aws import REGION, aws_environment, reset

ROOT = Path(__file__).resolve().parent.parent.parent
PINS = ("httpx==0.28.1", "h11==0.16.0")
API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/api/"
# moto's CloudFormation skips these types with a warning (see the module docstring): `pytestmark = MOTO_CFN`.
MOTO_CFN = pytest.mark.filterwarnings(
    r"ignore:Tried to parse AWS.{2}\w+.{2}\w+ but:UserWarning",
)


class FakeChalice:
    """Records each chalice command; `deploy` writes the record `chalice deploy` leaves behind."""

    def __init__(self, status: int = 0) -> None:
        self.status = status
        self.calls: list[tuple[list[str], Path, dict[str, str]]] = []

    def __call__(self, command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> int:
        self.calls.append((list(command), cwd, dict(env)))
        stage = command[command.index("--stage") + 1]
        record = cwd / ".chalice" / "deployed" / f"{stage}.json"
        if command[1] == "deploy" and self.status == 0:
            record.parent.mkdir(exist_ok=True)
            record.write_text(json.dumps({"resources": [
                {"name": "rest_api", "resource_type": "rest_api", "rest_api_url": API_URL}]}))
        elif command[1] == "delete":
            record.unlink(missing_ok=True)
        return self.status


class FakeInstaller:
    """Stands in for pip: writes one module per pin and counts its runs."""

    def __init__(self) -> None:
        self.runs: list[tuple[tuple[str, ...], Path]] = []

    def __call__(self, pins: Sequence[str], target: Path) -> None:
        self.runs.append((tuple(pins), target))
        for pin in pins:
            name = pin.split("==")[0]
            (target / name).mkdir()
            (target / name / "__init__.py").write_text(f"__version__ = {pin.split('==')[1]!r}\n")
            (target / name / "__pycache__").mkdir()
            (target / name / "__pycache__" / "x.pyc").write_bytes(b"\0")


@pytest.fixture()
def aws(moto_url: str) -> Iterator[Aws]:
    """The deploy commands' clients on a freshly reset moto server (the environment points boto3 at it)."""
    reset(moto_url)
    with aws_environment(moto_url):
        yield Aws(**{name: boto3.client(name) for name in ("cloudformation", "s3", "sts", "ssm")}, region=REGION)


def copy_project(target: Path) -> Path:
    """Make `target` a fresh clone of what deploy reads: config, template, buildspec and the sync code."""
    for name in (".chalice/config.json", "infra/support-stack.yml", "buildspec/buildspec.yml", "manifest.yml"):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, target / name)
    shutil.copytree(ROOT / "chalicelib", target / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    (target / "chalicelib" / "__pycache__").mkdir()
    (target / "chalicelib" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\0")
    return target


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A clone of the project in a temporary directory."""
    return copy_project(tmp_path / "clone")


@pytest.fixture()
def installer(monkeypatch: pytest.MonkeyPatch) -> FakeInstaller:
    """pip replaced by FakeInstaller, and the pins fixed to PINS."""
    monkeypatch.setattr(bundles, "pinned_requirements", lambda roots=bundles.SYNC_DISTRIBUTIONS: PINS)
    return FakeInstaller()


def args(stage: str = "dev", compute: str | None = "lambda", command: str = "deploy") -> argparse.Namespace:
    """Return the parsed arguments of `ghcr2ecr deploy` (or destroy)."""
    return argparse.Namespace(command=command, stage=stage, compute=compute)


def run_deploy(project: Path, aws: Aws, installer: FakeInstaller, chalice: FakeChalice, lines: list[str],
               **kwargs: Any) -> int:
    """Run deploy with the fakes, collecting its lines."""
    return deploy(args(**kwargs), project_dir=project, aws=aws, runner=chalice, install=installer, say=lines.append)


def config(project: Path) -> dict[str, Any]:
    """Return the clone's .chalice/config.json."""
    return json.loads((project / ".chalice" / "config.json").read_text())


def stack(aws: Aws, stage: str = "dev") -> dict[str, Any]:
    """Return the stage's support stack description."""
    return aws.cloudformation.describe_stacks(StackName=f"ghcr2ecr-{stage}-support")["Stacks"][0]


def outputs(aws: Aws, stage: str = "dev") -> dict[str, str]:
    """Return the stage's support stack outputs."""
    return {o["OutputKey"]: o["OutputValue"] for o in stack(aws, stage)["Outputs"]}


def parameters(aws: Aws, stage: str = "dev") -> dict[str, str]:
    """Return the stage's support stack parameters."""
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack(aws, stage)["Parameters"]}

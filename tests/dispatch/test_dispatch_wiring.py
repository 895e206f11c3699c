"""How `chalice deploy` wires dispatch to the queue and on_build_state to the copy project's builds.

Chalice imports app.py with the stage's environment_variables from .chalice/config.json already in the
environment (chalice/cli/factory.py `load_chalice_app`); the names must be the ones the support stack creates.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
STACK = cfn_yaml.loads((ROOT / "infra" / "support-stack.yml").read_text())["Resources"]
LOAD_AS_CHALICE_DEPLOYS = """
import json, os, sys
from chalice.cli.factory import CLIFactory
# as chalice/cli/__init__.py builds it: the stage's variables go into os.environ before app.py is imported
sys.argv = ["chalice", "deploy", "--stage", sys.argv[2], *sys.argv[1:]]  # what the chalice command sees
app = CLIFactory(sys.argv[4], environ=os.environ).create_config_obj(chalice_stage_name=sys.argv[3]).chalice_app
sources = {source.name: source for source in app.event_sources}
print(json.dumps({"queue": sources["dispatch"].queue,
                  "project": sources["on_build_state"].event_pattern["detail"]["project-name"]}))
"""


def stack_name(resource: str, key: str, stage: str) -> str:
    """Return the name the support stack gives a resource for `stage` (app name ghcr2ecr)."""
    template = STACK[resource]["Properties"][key]["Fn::Sub"]
    return template.replace("${AppName}", "ghcr2ecr").replace("${Stage}", stage)


def load(tmp_path: Path, stage: str, stage_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Load app.py in a fresh process as `chalice deploy --stage STAGE` does."""
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps({
        "version": "2.0", "app_name": "ghcr2ecr", "stages": {stage: {"environment_variables": stage_env}}}))
    (tmp_path / "app.py").symlink_to(ROOT / "app.py")
    (tmp_path / "chalicelib").symlink_to(ROOT / "chalicelib")
    env = {k: v for k, v in os.environ.items() if k not in ("SYNC_QUEUE_NAME", "CODEBUILD_PROJECT")}
    return subprocess.run([sys.executable, "-c", LOAD_AS_CHALICE_DEPLOYS, str(tmp_path), stage], env=env,
                          capture_output=True, text=True, timeout=120)


def wiring(tmp_path: Path, stage: str, stage_env: dict[str, str]) -> dict[str, object]:
    """Load app.py as `chalice deploy --stage STAGE` does; return its queue and project."""
    done = load(tmp_path, stage, stage_env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("stage_env", [{}, {"SYNC_QUEUE_NAME": "", "CODEBUILD_PROJECT": ""},
                                       {"SYNC_QUEUE_NAME": "ghcr2ecr-prod-sync.fifo"}])
def test_a_plain_chalice_deploy_of_a_stage_without_its_names_stops_naming_ghcr2ecr_deploy(tmp_path: Path,
                                                                                         stage_env: dict) -> None:
    done = load(tmp_path, "prod", stage_env)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0  # one line, no traceback
    assert "is not configured for stage prod: run `ghcr2ecr deploy --stage prod`" in done.stderr


def test_the_dev_stage_as_committed_wires_the_dev_stacks_resources(tmp_path: Path) -> None:
    dev = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]["environment_variables"]
    found = wiring(tmp_path, "dev", {k: dev[k] for k in ("SYNC_QUEUE_NAME", "CODEBUILD_PROJECT")})
    assert found == {"queue": stack_name("SyncQueue", "QueueName", "dev"),
                     "project": [stack_name("CopyProject", "Name", "dev")]}


def test_a_stage_gets_the_names_deploy_wrote_into_its_configuration(tmp_path: Path) -> None:
    names = {"SYNC_QUEUE_NAME": stack_name("SyncQueue", "QueueName", "prod"),
             "CODEBUILD_PROJECT": stack_name("CopyProject", "Name", "prod")}
    assert wiring(tmp_path, "prod", names) == {"queue": "ghcr2ecr-prod-sync.fifo", "project": ["ghcr2ecr-prod-copy"]}

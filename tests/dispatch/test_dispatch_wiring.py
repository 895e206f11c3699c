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
app = CLIFactory(sys.argv[1], environ=os.environ).create_config_obj(chalice_stage_name=sys.argv[2]).chalice_app
sources = {source.name: source for source in app.event_sources}
print(json.dumps({"queue": sources["dispatch"].queue,
                  "project": sources["on_build_state"].event_pattern["detail"]["project-name"]}))
"""


def stack_name(resource: str, key: str, stage: str) -> str:
    """Return the name the support stack gives a resource for `stage` (app name ghcr2ecr)."""
    template = STACK[resource]["Properties"][key]["Fn::Sub"]
    return template.replace("${AppName}", "ghcr2ecr").replace("${Stage}", stage)


def wiring(tmp_path: Path, stage: str, stage_env: dict[str, str]) -> dict[str, object]:
    """Load app.py in a fresh process as `chalice deploy --stage STAGE` does; return its queue and project."""
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps({
        "version": "2.0", "app_name": "ghcr2ecr", "stages": {stage: {"environment_variables": stage_env}}}))
    (tmp_path / "app.py").symlink_to(ROOT / "app.py")
    (tmp_path / "chalicelib").symlink_to(ROOT / "chalicelib")
    env = {k: v for k, v in os.environ.items() if k not in ("SYNC_QUEUE_NAME", "CODEBUILD_PROJECT")}
    done = subprocess.run([sys.executable, "-c", LOAD_AS_CHALICE_DEPLOYS, str(tmp_path), stage], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("stage_env", [{}, {"SYNC_QUEUE_NAME": "", "CODEBUILD_PROJECT": ""}])
def test_without_the_names_a_plain_chalice_deploy_wires_the_dev_stacks_resources(tmp_path: Path,
                                                                                 stage_env: dict) -> None:
    found = wiring(tmp_path, "dev", stage_env)
    assert found == {"queue": stack_name("SyncQueue", "QueueName", "dev"),
                     "project": [stack_name("CopyProject", "Name", "dev")]}
    dev = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]["environment_variables"]
    assert (dev["SYNC_QUEUE_NAME"], [dev["CODEBUILD_PROJECT"]]) == (found["queue"], found["project"])


def test_a_stage_gets_the_names_deploy_wrote_into_its_configuration(tmp_path: Path) -> None:
    names = {"SYNC_QUEUE_NAME": stack_name("SyncQueue", "QueueName", "prod"),
             "CODEBUILD_PROJECT": stack_name("CopyProject", "Name", "prod")}
    assert wiring(tmp_path, "prod", names) == {"queue": "ghcr2ecr-prod-sync.fifo", "project": ["ghcr2ecr-prod-copy"]}

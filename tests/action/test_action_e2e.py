"""The action's script, run as a workflow step, against the real App served over HTTP: a private image reaches ECR.

The App (app.py) runs in Chalice's local server on 127.0.0.1, on moto and the GitHub stand-in; the runner's
ID-token endpoint is the issuer stand-in's; a thread plays SQS, CodeBuild and EventBridge (tests.support.handoff):
it dispatches what the hand-off queued, runs the started build as CodeBuild would and delivers its final state.
The image is private on the GHCR stand-in, where only the job's token pulls it; no fallback secret exists.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from standins import images, skopeo
from standins.ghcr_ecr import EcrStandin, GhcrStandin, push_to
from standins.oidc import OidcIssuer
from tests.action.stub_app import ACTION_YML, SCRIPT, Step, input_variables, read_outputs
from tests.support.app_fixtures import AppEnv
from tests.support.converge import moto_ecr, unique_package  # noqa: F401
from tests.support.handoff import Cloud, leaks, open_hand_offs, private_world, sqs_event_maker  # noqa: F401

pytestmark = pytest.mark.registry
STEP_TIMEOUT = 180.0  # seconds: the script's own wait is `timeout-minutes: 2`
TAGS = ("v2.0.0", "latest")


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    """GitHub Actions' token service on loopback; its job is octo-org/app (owner id 1001, installation 77)."""
    with OidcIssuer() as standin:
        yield standin


@pytest.fixture
def app_url(client: Any, chalice_project: Path) -> Iterator[str]:
    """Serve app.py with Chalice's local server on a free loopback port; return its base URL."""
    from chalice.config import Config
    from chalice.local import ChaliceRequestHandler, LocalDevServer

    import app

    class Quiet(ChaliceRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Drop the access log; the App's JSON log lines say what happened."""

    config = Config.create(chalice_stage="test", app_name="ghcr2ecr", project_dir=str(chalice_project))
    server = LocalDevServer(app.app, config, "127.0.0.1", 0, handler_cls=Quiet)
    thread = threading.Thread(target=server.server.serve_forever, args=(0.05,), name="chalice-local", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.server.shutdown()
        server.server.server_close()
        thread.join(timeout=10)


def workflow_step(url: str, image: str, token: str, issuer: OidcIssuer, tmp_path: Path) -> Step:
    """Run action/handoff.py as the runner runs action.yml's step: inputs as INPUT_*, the runner's files and
    ID-token variables, python3 with the standard library only."""
    declared = yaml.safe_load(ACTION_YML.read_text())["inputs"]
    given = {"url": url, "image": image, "token": token, "timeout-minutes": "2"}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GITHUB_OUTPUT": str(tmp_path / "output"),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "HANDOFF_SLEEP_SCALE": "0.05",
           **issuer.actions_env()}
    for name, variable in input_variables().items():
        env[variable] = given.get(name, str(declared[name].get("default", "")))
    done = subprocess.run([sys.executable, "-S", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=STEP_TIMEOUT)
    output, summary = tmp_path / "output", tmp_path / "summary.md"
    return Step(done.returncode, done.stdout, done.stderr, read_outputs(output.read_text()) if output.exists() else {},
                summary.read_text() if summary.exists() else "")


def test_the_action_hands_a_private_image_to_the_app_and_ends_with_its_ecr_image_by_digest_and_tags(
        client: Any, private_world: AppEnv, ghcr: GhcrStandin, moto_ecr: EcrStandin,  # noqa: F811
        issuer: OidcIssuer, app_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import app

    open_hand_offs(monkeypatch, issuer, app_url)  # the audience is the API URL, as `ghcr2ecr deploy` sets it
    package = unique_package("action")
    source = f"{ghcr.host}/octo-org/{package}"
    pushed = push_to(ghcr, f"octo-org/{package}", images.multi_platform_index(seed=package), TAGS)
    job_token = ghcr.job_token("octo-org/*")
    with pytest.raises(skopeo.SkopeoError, match="401|unauthorized|403"):
        skopeo.digest(f"{source}@{pushed.digest}")  # private: anonymous may not pull it

    with Cloud(private_world, ghcr, app, tmp_path, sqs_event_maker(client)) as cloud:
        step = workflow_step(app_url, f"ghcr.io/octo-org/{package}@{pushed.digest}", job_token.password, issuer,
                             tmp_path)
    assert cloud.errors == [], cloud.errors[0]

    dest = f"{moto_ecr.host}/ghcr/octo-org/{package}"
    assert step.returncode == 0, step.log
    assert (cloud.dispatched, len(cloud.runs)) == (1, 1)
    assert cloud.runs[0].status == "SUCCEEDED" and cloud.runs[0].revoke_exit == 0
    assert step.outputs["status"] == "succeeded"
    assert step.outputs["image"] == f"{dest}@{pushed.digest}"
    assert sorted(step.outputs["tags"].split(",")) == sorted(TAGS)
    assert f"`{dest}@{pushed.digest}`" in step.summary and "the image is in Amazon ECR" in step.summary
    # skopeo, the oracle: the private image is in the ECR stand-in, index and every platform, under both tags
    assert skopeo.manifest_tree(f"{dest}@{pushed.digest}", moto_ecr.credential) == \
        skopeo.manifest_tree(f"{source}@{pushed.digest}", job_token) == [pushed.digest, *pushed.child_digests]
    assert sorted(skopeo.list_tags(dest, moto_ecr.credential)) == sorted(TAGS)
    # the job token: its parameter is gone, it still pulls, and the step printed it only to mask it
    assert private_world.token_parameters() == []
    assert skopeo.digest(f"{source}@{pushed.digest}", job_token) == pushed.digest
    unmasked = "\n".join(line for line in step.log.splitlines() if not line.startswith("::add-mask::"))
    assert leaks(job_token.password, {"step log": unmasked}) == []
    assert len(issuer.id_token_requests) >= 2 and {r.audience for r in issuer.id_token_requests} == {app_url}

"""`ghcr2ecr reconcile`: the operator's reconcile, through the same queue, dispatch and build."""

from __future__ import annotations

import pytest

from chalicelib import cli
from chalicelib.jobs import Job
from standins import images
from standins.ghcr_ecr import EcrStandin, GhcrStandin, push_to
from tests.support.app_fixtures import AppEnv, dispatch_queued
from tests.support.converge import delivery_for, moto_ecr, run_builds, unique_package, world  # noqa: F401
from tests.support.engine_helpers import dest_has

pytestmark = pytest.mark.registry
STAGE = ["--stage", "not-in-config"]  # the test's environment names everything (as in a CI job)


def mirror(client, env: AppEnv, ghcr: GhcrStandin, package: str) -> None:
    """Push `package`:v1 and mirror it through its event."""
    pushed = push_to(ghcr, f"octo-org/{package}", images.single_image(seed=package), ("v1",))
    headers, body = delivery_for(package, pushed.digest, "v1")
    assert client.http.post("/github/webhook", headers=headers, body=body).status_code == 202
    dispatch_queued(client, env)
    run_builds(env, ghcr)


def test_reconcile_of_one_owner_queues_its_mirrored_packages(client, world: AppEnv, ghcr: GhcrStandin,
                                                             capsys) -> None:
    packages = sorted(unique_package("op") for _ in range(2))
    for package in packages:
        mirror(client, world, ghcr, package)
    world.sqs.sent.clear()
    assert cli.main(["reconcile", *STAGE, "--owner", "Octo-Org"]) == 0
    [message] = world.sqs.sent
    job = Job.from_json(message["body"])
    assert job.origin == "operator" and sorted(p.name for p in job.packages) == packages
    assert "2 package(s) queued in 1 job(s)" in capsys.readouterr().err


def test_reconcile_of_a_package_not_mirrored_yet_mirrors_it(client, world: AppEnv, ghcr: GhcrStandin,
                                                           moto_ecr: EcrStandin) -> None:
    package = unique_package("other-name")
    push_to(ghcr, f"octo-org/{package}", images.single_image(seed=package), ("v1",))
    assert cli.main(["reconcile", *STAGE, "--owner", "octo-org", "--package", package]) == 0
    dispatch_queued(client, world)
    [result] = run_builds(world, ghcr)
    assert result["status"] == "synced"
    assert dest_has(moto_ecr, f"ghcr/octo-org/{package}", "manifests", "v1")


def test_reconcile_of_a_package_that_does_not_exist_creates_nothing(client, world: AppEnv, ghcr: GhcrStandin) -> None:
    assert cli.main(["reconcile", *STAGE, "--owner", "octo-org", "--package", unique_package("nothing")]) == 0
    dispatch_queued(client, world)
    [result] = run_builds(world, ghcr)
    assert result["status"] == "skipped"
    assert world.boto("ecr").describe_repositories()["repositories"] == []


def test_a_package_without_an_owner_is_a_usage_error(capsys) -> None:
    assert cli.main(["reconcile", *STAGE, "--package", "app"]) == 2
    assert "--package needs --owner" in capsys.readouterr().err

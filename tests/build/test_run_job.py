"""`ghcr2ecr run-job`, the build's command: one sync per package of the job, the filter applied in the build.

Real registries (the GHCR stand-in, an ECR stand-in whose login is moto's GetAuthorizationToken password) and
moto over HTTP for CreateRepository and the repository's tags.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chalicelib import aws
from chalicelib.build import run_job
from chalicelib.build.job import BuildJob, Target
from chalicelib.jobs import ALL_TAGS, Selection
from standins import images
from standins.ghcr_ecr import EcrStandin, GhcrStandin
from standins.push import PushedImage
from tests.support.converge import build_env, moto_ecr  # noqa: F401 (fixtures)
from tests.support.engine_helpers import FAST_RETRY, Sleeps

pytestmark = pytest.mark.registry


def target(ghcr: GhcrStandin, ecr: EcrStandin, repo: str, tags: str | None = None, linked: str | None = "app"
           ) -> Target:
    """Return a build target from the GHCR stand-in's `repo` to `ghcr/<repo>` on the ECR stand-in."""
    return Target(repo, f"http://{ghcr.host}/{repo}", f"http://{ecr.host}/ghcr/{repo}", 1001, linked, tags, True)


def job(*targets: Target, selection: Selection = ALL_TAGS, origin: str = "reconcile", deadline: float = 0.0
        ) -> BuildJob:
    """Return a build job of installation 77 for these targets."""
    return BuildJob(origin, "run-1", 77, "octo-org", selection, tuple(targets), True, deadline)


def run(build: BuildJob, env: dict[str, str], **kwargs: Any) -> list[dict[str, Any]]:
    """Run the job with fast retries."""
    return run_job.run(build, env, retry=FAST_RETRY, sleep=Sleeps(), **kwargs)


def repositories() -> dict[str, dict[str, str]]:
    """Return moto's ECR repositories with their tags."""
    client = aws.session().client("ecr")
    found = {}
    for repo in client.describe_repositories()["repositories"]:
        tags = client.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
        found[repo["repositoryName"]] = {t["Key"]: t["Value"] for t in tags}
    return found


def test_an_event_whose_tag_passes_syncs_and_records_what_reconcile_needs(
        ghcr: GhcrStandin, moto_ecr: EcrStandin, build_env: dict[str, str], repo_name: str,
        push_image: Callable[..., PushedImage]) -> None:
    pushed = push_image(ghcr, repo_name, images.multi_platform_index(seed=repo_name), ("v1",))
    [result] = run(job(target(ghcr, moto_ecr, repo_name, "v*"), selection=Selection(pushed.digest, "v1"),
                       origin="webhook"), build_env)
    assert result["status"] == "synced", result
    assert result["report"]["tags"]["set"] == ["v1"]
    recorded = repositories()[f"ghcr/{repo_name}"]
    assert recorded["ghcr2ecr:owner-id"] == "1001" and recorded["ghcr2ecr:installation-id"] == "77"
    assert recorded["ghcr2ecr:repository"] == "app" and recorded["ghcr2ecr:source"].endswith(repo_name)


def test_a_filter_admitting_nothing_sets_nothing_creates_nothing_and_succeeds(
        ghcr: GhcrStandin, moto_ecr: EcrStandin, build_env: dict[str, str], repo_name: str,
        push_image: Callable[..., PushedImage], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pushed = push_image(ghcr, repo_name, images.single_image(seed=repo_name), ("latest", "main"))
    build = job(target(ghcr, moto_ecr, repo_name, "v*"), selection=Selection(pushed.digest, "latest"),
                origin="webhook")
    for name, value in build_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GHCR2ECR_JOB", build.to_json())
    report = tmp_path / "report.json"
    args = type("Args", (), {"report": str(report), "quiet": True})()
    assert run_job.main(args) == 0
    written = json.loads(report.read_text())
    [result] = written["packages"]
    # Without the engine's --aliases the build skips at once; with it the engine copies nothing (its report).
    assert written["ok"] and result["status"] in ("skipped", "synced") and "GHCR2ECR_TAGS=v*" in result["reason"]
    assert repositories() == {} and not (result["report"] or {}).get("tags", {}).get("set")


def test_a_backfill_of_a_repository_without_a_package_creates_nothing_and_is_no_error(
        ghcr: GhcrStandin, moto_ecr: EcrStandin, build_env: dict[str, str], repo_name: str) -> None:
    [result] = run(job(target(ghcr, moto_ecr, repo_name), origin="backfill"), build_env)
    assert result["status"] == "skipped" and "no package" in result["reason"]
    assert repositories() == {}


def test_a_backfill_mirrors_every_tag_within_the_filter_one_package_after_the_other(
        ghcr: GhcrStandin, moto_ecr: EcrStandin, build_env: dict[str, str], new_repo_name: Callable[..., str],
        push_image: Callable[..., PushedImage]) -> None:
    first, second, missing = new_repo_name(), new_repo_name(), new_repo_name()
    push_image(ghcr, first, images.single_image(seed=first), ("v1", "v2", "dev"))
    push_image(ghcr, second, images.multi_platform_index(seed=second), ("v9",))
    results = run(job(*(target(ghcr, moto_ecr, r, "v*") for r in (first, missing, second)), origin="backfill"),
                  build_env)
    assert [r["status"] for r in results] == ["synced", "skipped", "synced"]
    assert sorted(results[0]["report"]["tags"]["set"]) == ["v1", "v2"]  # dev is filtered out
    assert results[2]["report"]["tags"]["set"] == ["v9"]
    assert sorted(repositories()) == sorted([f"ghcr/{first}", f"ghcr/{second}"])


def test_no_sync_starts_after_the_deadline(ghcr: GhcrStandin, moto_ecr: EcrStandin, build_env: dict[str, str],
                                           new_repo_name: Callable[..., str],
                                           push_image: Callable[..., PushedImage]) -> None:
    first, second = new_repo_name(), new_repo_name()
    for repo in (first, second):
        push_image(ghcr, repo, images.single_image(seed=repo), ("v1",))
    times = iter([100.0] * 3)  # the first package starts (and gets 50 s as its --deadline), then time passes
    results = run(job(target(ghcr, moto_ecr, first), target(ghcr, moto_ecr, second), deadline=150.0), build_env,
                  clock=lambda: next(times, 200.0))
    assert [r["status"] for r in results] == ["synced", "not_started"], results[0]["reason"]
    assert "next reconcile" in results[1]["reason"]


def test_a_backfill_out_of_time_records_the_existing_packages_it_could_not_start(
        ghcr: GhcrStandin, moto_ecr: EcrStandin, build_env: dict[str, str], new_repo_name: Callable[..., str],
        push_image: Callable[..., PushedImage]) -> None:
    exists, missing = new_repo_name(), new_repo_name()
    push_image(ghcr, exists, images.single_image(seed=exists), ("v1",))
    results = run(job(target(ghcr, moto_ecr, exists), target(ghcr, moto_ecr, missing), origin="backfill",
                      deadline=10.0), build_env, clock=lambda: 100.0)
    assert [r["status"] for r in results] == ["not_started", "not_started"]
    assert "next reconcile syncs it" in results[0]["reason"] and "reconcile --owner" in results[1]["reason"]
    recorded = repositories()
    assert list(recorded) == [f"ghcr/{exists}"] and recorded[f"ghcr/{exists}"]["ghcr2ecr:installation-id"] == "77"


def test_the_build_s_own_timeout_stops_new_syncs(ghcr: GhcrStandin, moto_ecr: EcrStandin, build_env: dict[str, str],
                                                 repo_name: str) -> None:
    env = {**build_env, "GHCR2ECR_BUILD_TIMEOUT_MINUTES": "15"}  # 810 s for the syncs, then the margin
    times = iter([0.0])
    [result] = run(job(target(ghcr, moto_ecr, repo_name), deadline=10_000.0), env,
                   clock=lambda: next(times, 900.0))
    assert result["status"] == "not_started"


def test_the_packages_of_a_job_share_one_ecr_client_and_its_login(
        ghcr: GhcrStandin, moto_ecr: EcrStandin, build_env: dict[str, str], new_repo_name: Callable[..., str],
        push_image: Callable[..., PushedImage], monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.registry import ecr

    made: list[Any] = []
    logins: list[dict[str, Any]] = []

    class Counting:
        """A real boto3 ECR client (moto), counting GetAuthorizationToken."""

        def __init__(self, region: str | None) -> None:
            self.client = real(region)
            made.append(self)

        def get_authorization_token(self, **kwargs: Any) -> dict[str, Any]:
            logins.append(kwargs)
            return self.client.get_authorization_token(**kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.client, name)

    real = ecr.ecr_client
    monkeypatch.setattr(ecr, "ecr_client", Counting)
    repos = [new_repo_name() for _ in range(3)]
    for repo in repos:
        push_image(ghcr, repo, images.single_image(seed=repo), ("v1",))
    results = run(job(*(target(ghcr, moto_ecr, r) for r in repos)), build_env)
    assert [r["status"] for r in results] == ["synced"] * 3
    assert len(made) == 1 and len(logins) == 1  # one client, one login, for three packages


def test_an_ecr_client_that_cannot_be_made_fails_each_package_with_its_reason(
        ghcr: GhcrStandin, moto_ecr: EcrStandin, build_env: dict[str, str], new_repo_name: Callable[..., str],
        push_image: Callable[..., PushedImage], monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import NoRegionError

    from chalicelib.registry import ecr

    def no_region(region: str | None) -> Any:
        raise NoRegionError()

    monkeypatch.setattr(ecr, "ecr_client", no_region)
    repos = [new_repo_name() for _ in range(2)]
    for repo in repos:
        push_image(ghcr, repo, images.single_image(seed=repo), ("v1",))
    results = run(job(*(target(ghcr, moto_ecr, r) for r in repos)), build_env)
    assert [r["status"] for r in results] == ["failed", "failed"]
    assert all("region" in r["reason"] for r in results)

"""Every release after the first: mirrored onto a destination that holds the previous ones, through each path.

A package's releases are published as docker/build-push-action, docker/metadata-action and cosign do
(standins/releases.py): an OCI index of linux/amd64 and linux/arm64 images and their attestation
manifests, base layers of a few MiB shared by both platforms and every release, a layer of each release's
own, a signature, and tags `vX.Y.Z vX.Y vX latest sha-<7 hex>` whose floating ones move. Each release is
mirrored the way the product runs: an event's builds (`ghcr2ecr sync --digest D --tag latest --aliases`
for the index, then the signature's own), a reconcile (`--all-tags`), `run-job` with a job of several
packages, a backfill of a new package built on the same base, and an event delivered after a newer
release's.

The destination is docker-registry, which answers a blob HEAD with `Content-Length: <blob size>` as ECR
and GHCR do; before each release after the first, a raw HEAD of each shared base layer asserts that it
does, with sizes over the engine's 64 KiB body cap, so these tests exercise the answer that once failed
every release after the first. After each sync skopeo reads every tag on both sides and every digest's
tree, the report shows the shared blobs skipped and only the new ones' bytes moved, and a logging proxy
in front of the source shows no GET of a blob the destination already had.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chalicelib.build import run_job
from chalicelib.build.job import BuildJob, Target
from chalicelib.cli import main
from chalicelib.jobs import ALL_TAGS
from standins import skopeo
from standins.ghcr_ecr import EcrStandin, GhcrStandin
from standins.releases import Release, expected_tags, new_blobs, publish, series, shared_blobs
from tests.support.converge import build_env, moto_ecr  # noqa: F401 (fixtures)
from tests.support.engine_helpers import FAST_RETRY, Sleeps, ecr_env, ghcr_env
from tests.support.releases import (BlobLog, Oracle, Side, assert_head_declares_size, assert_moved_only_new,
                                    tag_changes)
from tests.support.releases import ghcr_log  # noqa: F401 (a fixture)

pytestmark = pytest.mark.registry
RELEASES = 3
ENGINE_VARIABLES = ("CODEBUILD_BUILD_ID", "GHCR2ECR_LOG_FORMAT", "GHCR2ECR_DELIVERY_ID", "GHCR2ECR_INSTALLATION_ID",
                    "GHCR2ECR_SOURCE_TOKEN", "GHCR2ECR_SOURCE_FALLBACK_TOKEN", "GHCR2ECR_SOURCE_USERNAME",
                    "GHCR2ECR_DEST_USERNAME", "GHCR2ECR_DEST_PASSWORD", "GHCR2ECR_DEST_ECR", "GHCR2ECR_TOKEN_REALMS")


def event_builds(release: Release) -> list[list[str]]:
    """Return the builds a release's push starts: its index's event (GitHub names one tag, `latest`), then
    its signature's (cosign's push of `sha256-<hex>.sig` is an event of its own)."""
    return [["--digest", release.digest, "--tag", "latest", "--aliases"],
            ["--digest", release.signature.digest, "--tag", release.signature_tag]]


def reconcile_builds(release: Release) -> list[list[str]]:
    """Return the build of a reconcile, which mirrors every tag."""
    return [["--all-tags"]]


@pytest.fixture
def cli_env(ghcr: GhcrStandin, ecr: EcrStandin, monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables `ghcr2ecr sync` reads: the build's GHCR credentials, the ECR stand-in's login."""
    for name in ENGINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**ghcr_env(ghcr), **ecr_env(ecr)}.items():
        monkeypatch.setenv(name, value)


def cli_sync(source: str, dest: str, arguments: list[str], report: Path) -> dict[str, Any]:
    """Run `ghcr2ecr sync SOURCE DEST ARGUMENTS --report FILE`; return the report, asserting exit 0."""
    code = main(["sync", f"http://{source}", f"http://{dest}", *arguments, "--report", str(report), "--quiet"])
    written = json.loads(report.read_text())
    assert code == 0, (arguments, written["errors"])
    return written


@pytest.mark.parametrize("builds", [event_builds, reconcile_builds], ids=["event", "reconcile"])
def test_each_release_mirrors_onto_the_previous_ones_moving_only_its_new_blobs(
        builds: Callable[[Release], list[list[str]]], cli_env: None, ghcr: GhcrStandin, ecr: EcrStandin,
        ghcr_log: BlobLog, repo_name: str, tmp_path: Path) -> None:
    releases = series(repo_name, RELEASES)
    dest = Side(f"{ecr.host}/{repo_name}", ecr.credential)
    oracle = Oracle(Side(f"{ghcr.host}/{repo_name}", ghcr.fallback), dest)
    for number, release in enumerate(releases):
        publish(ghcr, repo_name, release)
        before = releases[:number]
        shared = shared_blobs(release, before)
        if before:
            assert_head_declares_size(ecr.url, repo_name, shared, ecr.credential)
        changed, unchanged = tag_changes(releases, number)
        for step, arguments in enumerate(builds(release)):
            ghcr_log.clear_log()
            report = cli_sync(f"{ghcr_log.host}/{repo_name}", dest.repository, arguments,
                              tmp_path / f"report-{release.version}-{step}.json")
            if step == 0:
                assert_moved_only_new(report, ghcr_log.fetched(repo_name), new_blobs(release, before), shared)
                assert sorted(report["tags"]["set"]) == sorted(changed)
                if builds is reconcile_builds:
                    assert sorted(report["tags"]["unchanged"]) == sorted(unchanged)
            else:  # the signature's own event, once the image's has mirrored it: nothing left to do
                assert (report["tags"]["set"], report["tags"]["unchanged"]) == ([], [release.signature_tag])
                assert report["bytes_moved"] == 0 and ghcr_log.fetched(repo_name) == {}
        oracle.assert_mirrored(releases[:number + 1])


def test_a_release_s_late_event_sets_its_own_tags_and_leaves_the_floating_ones_on_the_newest_release(
        cli_env: None, ghcr: GhcrStandin, ecr: EcrStandin, ghcr_log: BlobLog, repo_name: str,
        tmp_path: Path) -> None:
    first, late, newest = releases = series(repo_name, 3)
    dest = Side(f"{ecr.host}/{repo_name}", ecr.credential)
    for release in (first, late, newest):
        publish(ghcr, repo_name, release)
        if release is late:
            continue  # its delivery failed: redeliver_failed brings it back after the newest release's build
        cli_sync(f"{ghcr_log.host}/{repo_name}", dest.repository, event_builds(release)[0],
                 tmp_path / f"report-{release.version}.json")
    assert_head_declares_size(ecr.url, repo_name, shared_blobs(late, [first, newest]), ecr.credential)
    ghcr_log.clear_log()
    report = cli_sync(f"{ghcr_log.host}/{repo_name}", dest.repository, event_builds(late)[0],
                      tmp_path / "report-late.json")
    assert_moved_only_new(report, ghcr_log.fetched(repo_name), new_blobs(late, [first, newest]),
                          shared_blobs(late, [first, newest]))
    # `--tag latest` resolves at sync time, to the newest release, and `v1` has moved on to it too: only the
    # late release's remaining tags follow its digest (`v1.0` moves there from the first release)
    still_its_own = [tag for tag in late.tags if tag not in ("v1", "latest")]
    assert sorted(report["tags"]["set"]) == sorted([*still_its_own, late.signature_tag])
    Oracle(Side(f"{ghcr.host}/{repo_name}", ghcr.fallback), dest).assert_mirrored(releases)


def target(log: BlobLog, ecr: EcrStandin, repository: str) -> Target:
    """Return a build target from the GHCR stand-in, through the blob log, to `ghcr/<repository>` on the ECR one."""
    return Target(repository, f"http://{log.host}/{repository}", f"http://{ecr.host}/ghcr/{repository}", 1001, "app",
                  None, True)


def run(origin: str, env: dict[str, str], *targets: Target) -> list[dict[str, Any]]:
    """Run a build job of every tag of these packages (a reconcile's or a backfill's), with fast retries."""
    build = BuildJob(origin, f"{origin}-1", 77, "octo-org", ALL_TAGS, targets, True, 0.0)
    return run_job.run(build, env, retry=FAST_RETRY, sleep=Sleeps())


def test_a_job_of_several_packages_mirrors_each_release_onto_the_previous_ones_moving_only_new_blobs(
        ghcr: GhcrStandin, moto_ecr: EcrStandin, ghcr_log: BlobLog, build_env: dict[str, str],
        new_repo_name: Callable[..., str]) -> None:
    packages = {repo: series(repo, RELEASES) for repo in (new_repo_name(), new_repo_name())}
    oracles = {repo: Oracle(Side(f"{ghcr.host}/{repo}", ghcr.fallback),
                            Side(f"{moto_ecr.host}/ghcr/{repo}", moto_ecr.credential)) for repo in packages}
    for number in range(RELEASES):
        for repo, releases in packages.items():
            publish(ghcr, repo, releases[number])
            if number:
                shared = shared_blobs(releases[number], releases[:number])
                assert_head_declares_size(moto_ecr.url, f"ghcr/{repo}", shared, moto_ecr.credential)
        ghcr_log.clear_log()
        results = run("reconcile", build_env, *(target(ghcr_log, moto_ecr, repo) for repo in packages))
        assert [r["status"] for r in results] == ["synced"] * len(packages), [r["reason"] for r in results]
        for (repo, releases), result in zip(packages.items(), results):
            release, before = releases[number], releases[:number]
            assert_moved_only_new(result["report"], ghcr_log.fetched(repo), new_blobs(release, before),
                                  shared_blobs(release, before))
            assert sorted(result["report"]["tags"]["set"]) == sorted(tag_changes(releases, number)[0])
            oracles[repo].assert_mirrored(releases[:number + 1])


def test_a_backfill_of_a_new_package_on_the_same_base_copies_it_whole_and_moves_nothing_for_the_mirrored_one(
        ghcr: GhcrStandin, moto_ecr: EcrStandin, ghcr_log: BlobLog, build_env: dict[str, str],
        new_repo_name: Callable[..., str], tmp_path: Path) -> None:
    mirrored, added = new_repo_name(), new_repo_name()
    old, new = series(mirrored, RELEASES), series(added, RELEASES, base=mirrored)
    for release in old:
        publish(ghcr, mirrored, release)
    [first] = run("reconcile", build_env, target(ghcr_log, moto_ecr, mirrored))
    everything = {digest: blob.size for release in old for digest, blob in release.blobs().items()}
    assert_moved_only_new(first["report"], ghcr_log.fetched(mirrored), everything, {})
    oracle = Oracle(Side(f"{ghcr.host}/{mirrored}", ghcr.fallback),
                    Side(f"{moto_ecr.host}/ghcr/{mirrored}", moto_ecr.credential))
    oracle.assert_mirrored(old)
    base = shared_blobs(new[0], old)
    assert len(base) == 2  # the new package's base layers are the mirrored one's
    assert_head_declares_size(moto_ecr.url, f"ghcr/{mirrored}", base, moto_ecr.credential)
    for release in new:
        publish(ghcr, added, release)
    ghcr_log.clear_log()
    results = run("backfill", build_env, target(ghcr_log, moto_ecr, mirrored), target(ghcr_log, moto_ecr, added))
    assert [r["status"] for r in results] == ["synced", "synced"], [r["reason"] for r in results]
    again, backfilled = results[0]["report"], results[1]["report"]
    assert (again["tags"]["set"], sorted(again["tags"]["unchanged"])) == ([], sorted(expected_tags(old)))
    assert again["blobs"]["copied"] == again["bytes_moved"] == 0 and ghcr_log.fetched(mirrored) == {}
    oracle.assert_mirrored(old)
    # A new destination repository: each blob is copied from the source, or mounted from the mirrored
    # package's repository, but never fetched twice, and only what was fetched counts as moved.
    wanted = {digest: blob.size for release in new for digest, blob in release.blobs().items()}
    fetched = ghcr_log.fetched(added)
    assert backfilled["blobs"]["skipped"] == 0
    assert backfilled["blobs"]["copied"] + backfilled["blobs"]["mounted"] == len(wanted)
    assert set(fetched) <= set(wanted) and len(fetched) == backfilled["blobs"]["copied"]
    assert all(sizes == [wanted[digest]] for digest, sizes in fetched.items())
    assert backfilled["bytes_moved"] == sum(wanted[digest] for digest in fetched)
    dest = Side(f"{moto_ecr.host}/ghcr/{added}", moto_ecr.credential)
    Oracle(Side(f"{ghcr.host}/{added}", ghcr.fallback), dest).assert_mirrored(new)
    layout = tmp_path / "backfilled"
    for release in new:  # skopeo reads every blob of every platform back and checks its digest
        skopeo.copy(f"docker://{dest.repository}@{release.digest}", f"oci:{layout}:{release.version}",
                    moto_ecr.credential, None)

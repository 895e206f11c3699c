"""--aliases: every tag the source has on the pushed digest reaches the destination, filtered by --tags."""

from __future__ import annotations

from collections.abc import Callable

import boto3
import pytest

from chalicelib.sync import engine as sync
from standins import images, skopeo
from standins.aws import aws_variables
from standins.faults import FaultProxy
from standins.ghcr_ecr import EcrStandin, GhcrStandin
from standins.push import PushedImage
from standins.registry import RegistryProcess
from tests.support.engine_helpers import FAST_RETRY, ImmutableTags, ecr_env, ghcr_env, run_sync

Pusher = Callable[..., PushedImage]
Proxies = Callable[..., FaultProxy]
pytestmark = pytest.mark.registry
OLD_TAGS = ("v1.2.2", "v1.2", "v1", "latest")
NEW_TAGS = ("v1.2.3", "v1.2", "v1", "latest")


def _env(ghcr: GhcrStandin, ecr: EcrStandin) -> dict[str, str]:
    return {**ghcr_env(ghcr, app_token=False), **ecr_env(ecr)}


def _releases(ghcr: GhcrStandin, ecr: EcrStandin, push_image: Pusher, repo: str) -> tuple[PushedImage, PushedImage]:
    """Release 1.2.2 pushed and mirrored by its event, then release 1.2.3 pushed with its four tags."""
    old = push_image(ghcr, repo, images.multi_platform_index(seed=repo + "/1.2.2"), OLD_TAGS)
    first = run_sync(ghcr.host, repo, ecr.host, repo, _env(ghcr, ecr), digest=old.digest, tags=["latest"],
                     aliases=True)
    assert first.ok and sorted(first.tags_set) == sorted(OLD_TAGS), first.errors
    new = push_image(ghcr, repo, images.multi_platform_index(seed=repo + "/1.2.3"), NEW_TAGS)
    return old, new


def _tags(ecr: EcrStandin, repo: str) -> dict[str, str]:
    return {tag: skopeo.digest(f"{ecr.host}/{repo}:{tag}", ecr.credential)
            for tag in skopeo.list_tags(f"{ecr.host}/{repo}", ecr.credential)}


def test_a_four_tag_release_announced_by_one_event_sets_all_four_and_leaves_the_previous_release_alone(
        ghcr: GhcrStandin, ecr: EcrStandin, push_image: Pusher, repo_name: str) -> None:
    old, new = _releases(ghcr, ecr, push_image, repo_name)
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), digest=new.digest,
                      tags=["latest"], aliases=True)
    assert report.ok, report.errors
    assert sorted(report.tags_set) == sorted(NEW_TAGS)
    assert sorted(report.aliases) == sorted(["v1.2.3", "v1.2", "v1"])
    assert report.to_dict()["tags"]["aliases"] == report.aliases
    assert _tags(ecr, repo_name) == {"v1.2.2": old.digest, **{t: new.digest for t in NEW_TAGS}}


def test_a_filtered_out_event_tag_with_passing_aliases_mirrors_the_aliases_only(ghcr: GhcrStandin,
        ecr: EcrStandin, push_image: Pusher, repo_name: str) -> None:
    old, new = _releases(ghcr, ecr, push_image, repo_name)
    # GHCR2ECR_TAGS=v* and the event names `latest`: the build names no --tag
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), digest=new.digest,
                      aliases=True, tag_globs="v*")
    assert report.ok, report.errors
    assert sorted(report.tags_set) == sorted(["v1.2.3", "v1.2", "v1"])
    assert _tags(ecr, repo_name) == {"v1.2.2": old.digest, "latest": old.digest,
                                     **{t: new.digest for t in ("v1.2.3", "v1.2", "v1")}}


def test_an_explicit_tag_is_set_even_when_the_filter_excludes_it(ghcr: GhcrStandin, ecr: EcrStandin,
        push_image: Pusher, repo_name: str) -> None:
    image = push_image(ghcr, repo_name, images.single_image(seed=repo_name), ("latest", "v3", "nightly"))
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["latest"],
                      aliases=True, tag_globs="v*")
    assert report.ok and sorted(report.tags_set) == ["latest", "v3"]
    assert _tags(ecr, repo_name) == {"latest": image.digest, "v3": image.digest}


def test_a_repeated_event_moves_no_byte_and_sets_nothing(ghcr: GhcrStandin, ecr: EcrStandin, push_image: Pusher,
        fault_proxy: Proxies, repo_name: str) -> None:
    _, new = _releases(ghcr, ecr, push_image, repo_name)
    env = _env(ghcr, ecr)
    assert run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, digest=new.digest, tags=["latest"],
                    aliases=True).ok
    source, dest = fault_proxy(ghcr), fault_proxy(ecr)
    report = run_sync(source.host, repo_name, dest.host, repo_name, env, digest=new.digest, tags=["latest"],
                      aliases=True)
    assert report.ok and report.tags_set == [] and sorted(report.tags_unchanged) == sorted(NEW_TAGS)
    assert report.stats.bytes_moved == 0 and source.traffic.count("blob") == 0
    assert dest.traffic.count("upload") == 0 and dest.traffic.count("manifest", "PUT") == 0
    # one source request per tag at most: the tags already right cost nothing, v1.2.2 (elsewhere) one HEAD
    assert source.traffic.count("manifest", "HEAD") == 1 and source.traffic.count("tags") == 1


def test_a_moved_alias_in_an_immutable_repository_is_a_conflict_while_the_others_complete(ghcr: GhcrStandin,
        ecr: EcrStandin, push_image: Pusher, repo_name: str) -> None:
    old, new = _releases(ghcr, ecr, push_image, repo_name)
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), digest=new.digest,
                      tags=["latest"], aliases=True, http_transports={"destination": ImmutableTags()})
    assert not report.ok and report.exit_code == 1
    assert report.tags_set == ["v1.2.3"]
    assert len(report.conflicts) == 3 and all("immutable" in c for c in report.conflicts)


def test_signatures_follow_the_aliased_digest(ghcr: GhcrStandin, ecr: EcrStandin, push_image: Pusher,
        repo_name: str) -> None:
    image = push_image(ghcr, repo_name, images.single_image(seed=repo_name), ("v2", "stable"))
    tag = images.signature_tag(image.digest)
    push_image(ghcr, repo_name, images.cosign_signature(image.manifest), (tag,))
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), digest=image.digest,
                      aliases=True)
    assert report.ok and sorted(report.tags_set) == sorted(["v2", "stable", tag]) and report.signatures == [tag]


def test_past_the_budget_floating_tags_are_checked_first_and_the_rest_reported(ghcr: GhcrStandin,
        ecr: EcrStandin, push_image: Pusher, repo_name: str) -> None:
    env = _env(ghcr, ecr)
    for n in range(4):  # four older releases, each with its own tag, mirrored
        release = push_image(ghcr, repo_name, images.single_image(seed=f"{repo_name}/{n}"), (f"v0.{n}",))
        assert run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, digest=release.digest, aliases=True).ok
    old = push_image(ghcr, repo_name, images.single_image(seed=repo_name + "/old"), ("v1.0", "v1"))
    assert run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, digest=old.digest, aliases=True).ok
    new = push_image(ghcr, repo_name, images.single_image(seed=repo_name + "/new"), ("v1.1", "v1"))
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, digest=new.digest, aliases=True, budget=2)
    assert report.ok and report.exit_code == 0 and report.warnings, report.errors
    # v1 and v1.0 share a digest in the destination (floating): checked first; then v1.1, new there; then v0.*
    assert report.tags_set == ["v1"]
    assert report.tags_unchecked[0] == "v1.1" and sorted(report.tags_unchecked[1:]) == ["v0.0", "v0.1", "v0.2", "v0.3"]
    assert report.to_dict()["tags"]["unchecked"] == report.tags_unchecked


def test_a_filter_that_admits_nothing_sets_nothing_and_creates_no_repository(ghcr: GhcrStandin,
        plain_registry: RegistryProcess, moto_url: str, push_image: Pusher, repo_name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in aws_variables(moto_url).items():
        monkeypatch.setenv(name, value)
    image = push_image(ghcr, repo_name, images.single_image(seed=repo_name), ("latest", "main"))
    request = sync.SyncRequest.build(f"http://{ghcr.host}/{repo_name}", f"{plain_registry.url}/none/{repo_name}",
                                     digest=image.digest, aliases=True, tag_globs="v*")
    report = sync.run(request, env={**ghcr_env(ghcr), "GHCR2ECR_DEST_ECR": "true"}, retry=FAST_RETRY)
    assert report.ok and report.exit_code == 0 and report.tags_set == [] and report.stats.manifests_copied == 0
    assert report.notes and "passes --tags" in report.notes[0] and report.repository_created is None
    names = [r["repositoryName"] for r in boto3.client("ecr").describe_repositories()["repositories"]]
    assert f"none/{repo_name}" not in names

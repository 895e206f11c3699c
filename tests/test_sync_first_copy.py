"""A first copy into a destination that holds no tag: no manifest HEAD answered 404, no layer sent twice."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from standins import images, skopeo
from standins.faults import FaultProxy
from standins.ghcr_ecr import EcrStandin, GhcrStandin
from standins.push import PushedImage
from tests.support.engine_helpers import ecr_env, ghcr_env, run_sync

Pusher = Callable[..., PushedImage]
Proxies = Callable[..., FaultProxy]
pytestmark = pytest.mark.registry


def _env(ghcr: GhcrStandin, ecr: EcrStandin) -> dict[str, str]:
    return {**ghcr_env(ghcr, app_token=False), **ecr_env(ecr)}


def test_a_first_copy_reads_the_manifests_without_heading_the_empty_destination(ghcr: GhcrStandin,
        ecr: EcrStandin, fault_proxy: Proxies, push_image: Pusher, repo_name: str) -> None:
    pushed = push_image(ghcr, repo_name, images.multi_platform_index(seed=repo_name), ("v1", "latest"))
    source, dest = fault_proxy(ghcr), fault_proxy(ecr)
    report = run_sync(source.host, repo_name, dest.host, repo_name, _env(ghcr, ecr), all_tags=True)
    assert report.ok, report.errors
    assert sorted(report.tags_set) == ["latest", "v1"]
    assert dest.traffic.count("manifest", "HEAD") == 0  # neither the tree's digests nor the tags being set
    assert dest.traffic.count("blob", "HEAD") == len(pushed.blobs)  # blobs are still checked, all at once
    # each tag read by GET (its manifest is needed), no HEAD first; the children once each
    assert source.traffic.count("manifest", "HEAD") == 0
    assert source.traffic.count("manifest", "GET") == 2 + len(pushed.child_digests)
    for tag in ("v1", "latest"):
        assert skopeo.manifest_tree(f"{ecr.host}/{repo_name}:{tag}", ecr.credential) == \
            skopeo.manifest_tree(f"{ghcr.host}/{repo_name}:{tag}", ghcr.fallback)


def test_a_first_copy_that_stopped_before_its_tags_sends_no_layer_again(ghcr: GhcrStandin, ecr: EcrStandin,
        fault_proxy: Proxies, push_image: Pusher, repo_name: str) -> None:
    pushed = push_image(ghcr, repo_name, images.multi_platform_index(seed=repo_name), ("v1",))
    first = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), digest=pushed.digest)
    assert first.ok and first.tags_set == [], first.errors  # everything there, by digest, and still no tag
    source = fault_proxy(ghcr)
    report = run_sync(source.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), all_tags=True)
    assert report.ok and report.tags_set == ["v1"], report.errors
    assert source.traffic.blob_bytes == 0
    assert report.stats.blobs_skipped == len(pushed.blobs)
    assert skopeo.digest(f"{ecr.host}/{repo_name}:v1", ecr.credential) == pushed.digest

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


def test_a_tag_whose_manifest_cannot_be_read_by_tag_does_not_stop_the_first_copy(ghcr: GhcrStandin,
        ecr: EcrStandin, fault_proxy: Proxies, push_image: Pusher, repo_name: str) -> None:
    first = push_image(ghcr, repo_name, images.single_image(seed=repo_name + "/1"), ("v1",))
    second = push_image(ghcr, repo_name, images.single_image(seed=repo_name + "/2"), ("v2",))
    source = fault_proxy(ghcr)
    source.corrupt("GET", "/manifests/v2$")  # its body no longer matches its digest: a HEAD resolves it instead
    report = run_sync(source.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), all_tags=True)
    assert report.ok, report.errors
    assert sorted(report.tags_set) == ["v1", "v2"]
    assert skopeo.digest(f"{ecr.host}/{repo_name}:v2", ecr.credential) == second.digest
    assert skopeo.digest(f"{ecr.host}/{repo_name}:v1", ecr.credential) == first.digest


def test_an_unexpected_failure_while_copying_blobs_is_reported_as_itself(ghcr: GhcrStandin, ecr: EcrStandin,
        push_image: Pusher, repo_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.sync import copy

    push_image(ghcr, repo_name, images.large_image(2 << 20, seed=repo_name), ("v1",))

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("a bug in the copy")

    monkeypatch.setattr(copy, "copy_blob_with_retries", broken)
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), all_tags=True)
    assert not report.ok
    assert "a bug in the copy" in report.cause() and "UnboundLocalError" not in report.cause()


def test_small_blob_copies_alongside_stay_within_the_concurrency(ghcr: GhcrStandin, ecr: EcrStandin,
        push_image: Pusher, repo_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from chalicelib.sync import copy

    pushed = push_image(ghcr, repo_name, images.multi_platform_index(seed=repo_name), ("v1",))
    real, lock, running, peak = copy.copy_blob_with_retries, threading.Lock(), [0], [0]

    def counted(*args: object, **kwargs: object) -> str:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            return real(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(copy, "copy_blob_with_retries", counted)
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), all_tags=True, concurrency=1)
    assert report.ok and report.stats.blobs_copied == len(pushed.blobs), report.errors
    assert peak[0] == 1  # every blob here is small: one at a time, as asked


def test_a_tag_neither_its_get_nor_its_head_can_resolve_is_an_error_not_a_silent_skip(ghcr: GhcrStandin,
        ecr: EcrStandin, fault_proxy: Proxies, push_image: Pusher, repo_name: str) -> None:
    push_image(ghcr, repo_name, images.single_image(seed=repo_name + "/1"), ("v1",))
    push_image(ghcr, repo_name, images.single_image(seed=repo_name + "/2"), ("v2",))
    source = fault_proxy(ghcr)
    source.corrupt("GET", "/manifests/v2$", count=-1)
    source.fail("HEAD", "/manifests/v2$", status=404, count=-1)
    report = run_sync(source.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), all_tags=True)
    assert not report.ok
    assert "v2" not in report.tags_set and "digest" in report.cause().lower()

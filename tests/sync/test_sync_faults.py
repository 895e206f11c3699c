"""Faults between real registries: drops, 5xx, 429, corrupted bytes, interruptions; memory stays flat."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import httpx
import pytest

from chalicelib.registry.transport import RetryPolicy
from standins import images, skopeo
from standins.faults import FaultProxy
from standins.ghcr_ecr import EcrStandin, GhcrStandin
from standins.push import PushedImage
from tests.support.engine_helpers import Sleeps, dest_has, ecr_env, ghcr_env, run_sync

Pusher = Callable[..., PushedImage]
Proxies = Callable[..., FaultProxy]
pytestmark = pytest.mark.registry
MB = 1024 * 1024


@pytest.fixture
def large(ghcr: GhcrStandin, push_image: Pusher, repo_name: str) -> tuple[PushedImage, str]:
    """A single image with one 3 MiB layer on the GHCR stand-in, and the layer's digest."""
    pushed = push_image(ghcr, repo_name, images.large_image(3 * MB, seed=repo_name), ("v1",))
    layer = max(pushed.blobs, key=pushed.blobs.__getitem__)
    return pushed, layer


def _env(ghcr: GhcrStandin, ecr: EcrStandin) -> dict[str, str]:
    return {**ghcr_env(ghcr), **ecr_env(ecr)}


def test_a_connection_dropped_mid_blob_is_retried_and_the_copy_completes(ghcr: GhcrStandin, ecr: EcrStandin,
        fault_proxy: Proxies, large: tuple[PushedImage, str], repo_name: str) -> None:
    pushed, layer = large
    proxy = fault_proxy(ghcr)
    proxy.drop("GET", f"/blobs/{layer}$", after_bytes=MB, count=1)
    report = run_sync(proxy.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"])
    assert report.ok, report.errors
    assert skopeo.digest(f"{ecr.host}/{repo_name}:v1", ecr.credential) == pushed.digest
    assert proxy.traffic.count("blob", "GET") == 3  # config, the dropped layer, the layer again


def test_an_interrupted_run_sets_no_tag_and_the_next_run_moves_only_what_is_missing(ghcr: GhcrStandin,
        ecr: EcrStandin, fault_proxy: Proxies, large: tuple[PushedImage, str], repo_name: str) -> None:
    pushed, layer = large
    proxy = fault_proxy(ghcr)
    proxy.drop("GET", f"/blobs/{layer}$", after_bytes=MB, count=-1)
    report = run_sync(proxy.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"])
    assert not report.ok and "connection lost copying blob" in report.cause()
    assert not dest_has(ecr, repo_name, "manifests", "v1")
    assert not dest_has(ecr, repo_name, "manifests", pushed.digest)
    assert not dest_has(ecr, repo_name, "blobs", layer)
    proxy.clear()
    proxy.reset_traffic()
    report = run_sync(proxy.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"])
    assert report.ok and report.tags_set == ["v1"]
    assert proxy.traffic.blob_bytes == pushed.blobs[layer]  # the config made it the first time
    assert report.stats.blobs_skipped == 1


def test_500s_are_retried_with_backoff(ghcr: GhcrStandin, ecr: EcrStandin, fault_proxy: Proxies,
        pushed_index: PushedImage, repo_name: str) -> None:
    proxy, sleeps = fault_proxy(ghcr), Sleeps()
    proxy.fail("GET", "/manifests/", status=500, count=2)
    proxy.fail("GET", "/blobs/sha256:", status=503, count=1)
    report = run_sync(proxy.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"], sleep=sleeps)
    assert report.ok, report.errors
    assert len(sleeps.waits) == 3


def test_a_429_waits_as_long_as_retry_after_asks(ghcr: GhcrStandin, ecr: EcrStandin, fault_proxy: Proxies,
        pushed_index: PushedImage, repo_name: str) -> None:
    proxy, sleeps = fault_proxy(ghcr), Sleeps()
    proxy.throttle("GET", "/blobs/sha256:", count=1)
    report = run_sync(proxy.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"], sleep=sleeps,
                      retry=RetryPolicy(attempts=3, backoff=0.01, max_retry_after=5.0))
    assert report.ok
    assert sleeps.waits == [1.0]  # the proxy answers Retry-After: 1


def test_a_registry_that_keeps_failing_is_not_retried_forever(ghcr: GhcrStandin, ecr: EcrStandin,
        fault_proxy: Proxies, pushed_index: PushedImage, repo_name: str) -> None:
    proxy, sleeps = fault_proxy(ghcr), Sleeps()
    proxy.fail("GET", "/manifests/", status=502, count=-1)
    report = run_sync(proxy.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"], sleep=sleeps)
    assert not report.ok and "HTTP 502" in report.cause()
    assert len(sleeps.waits) == 3  # FAST_RETRY: 4 attempts


def test_a_corrupted_byte_is_detected_and_the_blob_fetched_again(ghcr: GhcrStandin, ecr: EcrStandin,
        fault_proxy: Proxies, large: tuple[PushedImage, str], repo_name: str) -> None:
    pushed, layer = large
    proxy = fault_proxy(ghcr)
    proxy.corrupt("GET", f"/blobs/{layer}$", count=1)
    report = run_sync(proxy.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"])
    assert report.ok
    assert skopeo.digest(f"{ecr.host}/{repo_name}:v1", ecr.credential) == pushed.digest


def test_corrupted_bytes_are_never_stored(ghcr: GhcrStandin, ecr: EcrStandin, fault_proxy: Proxies,
        large: tuple[PushedImage, str], repo_name: str) -> None:
    pushed, layer = large
    proxy = fault_proxy(ghcr)
    proxy.corrupt("GET", f"/blobs/{layer}$", count=-1)
    report = run_sync(proxy.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"])
    assert not report.ok and "digest mismatch" in report.cause()
    assert not dest_has(ecr, repo_name, "blobs", layer)
    assert not dest_has(ecr, repo_name, "manifests", "v1")


def test_a_failed_upload_to_the_destination_is_retried(ghcr: GhcrStandin, ecr: EcrStandin, fault_proxy: Proxies,
        pushed_index: PushedImage, repo_name: str) -> None:
    dest = fault_proxy(ecr)
    dest.fail("PUT", "/blobs/uploads/", status=500, count=1)
    report = run_sync(ghcr.host, repo_name, dest.host, repo_name, _env(ghcr, ecr), tags=["v1"])
    assert report.ok, report.errors
    assert skopeo.digest(f"{ecr.host}/{repo_name}:v1", ecr.credential) == pushed_index.digest


def test_a_source_that_disappears_fails_in_one_line(ghcr: GhcrStandin, ecr: EcrStandin, fault_proxy: Proxies,
        pushed_index: PushedImage, repo_name: str) -> None:
    proxy = fault_proxy(ghcr)
    proxy.down()
    report = run_sync(proxy.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"])
    assert not report.ok
    assert "source registry unreachable after 4 attempt(s)" in report.cause()
    assert "\n" not in report.cause()


def test_memory_does_not_grow_with_blob_size(ghcr: GhcrStandin, ecr: EcrStandin, push_image: Pusher,
        repo_name: str) -> None:
    pushed = push_image(ghcr, repo_name, images.large_image(64 * MB, seed=repo_name), ("v1",))
    tracemalloc.start()
    try:
        report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok and report.stats.bytes_moved == pushed.blob_bytes
    assert peak < 16 * MB, f"peak Python allocations {peak / MB:.1f} MiB for a 64 MiB layer"


class _BlobRedirectLoop(httpx.BaseTransport):
    """Wraps the source's HTTP transport so that every blob GET redirects to itself."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer blob GETs with a 307 to the same URL; pass the rest through."""
        if request.method == "GET" and "/blobs/sha256:" in request.url.path:
            return httpx.Response(307, headers={"Location": str(request.url)})
        return self.inner.handle_request(request)

    def close(self) -> None:
        """Close the wrapped transport."""
        self.inner.close()


def test_a_redirect_loop_fails_the_sync_in_one_line_and_sets_no_tag(ghcr: GhcrStandin, ecr: EcrStandin,
        pushed_index: PushedImage, repo_name: str) -> None:
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"],
                      http_transports={"source": _BlobRedirectLoop()})
    assert report.exit_code == 1 and "\n" not in report.cause()
    assert "source registry: TooManyRedirects" in report.cause() and "internal error" not in report.cause()
    assert not dest_has(ecr, repo_name, "manifests", "v1")

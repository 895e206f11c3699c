"""Cosign tags asked for by name (their own registry_package event): set only next to the image they sign."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest

from chalicelib.sync import engine as sync
from chalicelib.sync.signatures import NOT_MIRRORED, NOT_WANTED
from standins import images, skopeo
from standins.ghcr_ecr import EcrStandin, GhcrStandin
from standins.push import PushedImage
from tests.support.engine_helpers import dest_has, ecr_env, ghcr_env, run_sync

Pusher = Callable[..., PushedImage]
pytestmark = pytest.mark.registry


def _signed(ghcr: GhcrStandin, push_image: Pusher, repo: str) -> tuple[PushedImage, PushedImage, str]:
    """Push an image as v1 and its cosign signature; return both and the signature tag."""
    image = push_image(ghcr, repo, images.single_image(seed=repo), ("v1",))
    tag = images.signature_tag(image.digest)
    return image, push_image(ghcr, repo, images.cosign_signature(image.manifest), (tag,)), tag


def test_a_signature_of_an_image_not_mirrored_is_skipped_and_creates_nothing(ghcr: GhcrStandin, ecr: EcrStandin,
        push_image: Pusher, repo_name: str) -> None:
    _, signature, tag = _signed(ghcr, push_image, repo_name)
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, {**ghcr_env(ghcr), **ecr_env(ecr)}, tags=[tag],
                      digest=signature.digest)
    assert report.ok and report.exit_code == 0, report.errors
    assert report.tags_skipped == {tag: NOT_MIRRORED} and report.tags_set == []
    assert report.to_dict()["tags"]["skipped"] == {tag: "signed image not mirrored"}
    assert report.stats.manifests_copied == 0 and report.stats.blobs_copied == 0
    assert not dest_has(ecr, repo_name, "manifests", signature.digest)


def test_a_signature_of_a_mirrored_image_is_set(ghcr: GhcrStandin, ecr: EcrStandin, push_image: Pusher,
        repo_name: str) -> None:
    env = {**ghcr_env(ghcr), **ecr_env(ecr)}
    _, signature, tag = _signed(ghcr, push_image, repo_name)
    assert run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=["v1"], signatures=False).ok
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=[tag], digest=signature.digest)
    assert report.ok and report.tags_set == [tag] and report.tags_skipped == {}
    assert skopeo.digest(f"{ecr.host}/{repo_name}:{tag}", ecr.credential) == signature.digest


def test_a_signature_of_an_image_copied_in_the_same_run_is_set(ghcr: GhcrStandin, ecr: EcrStandin,
        push_image: Pusher, repo_name: str) -> None:
    _, signature, tag = _signed(ghcr, push_image, repo_name)
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, {**ghcr_env(ghcr), **ecr_env(ecr)},
                      tags=["v1", tag])
    assert report.ok and sorted(report.tags_set) == sorted(["v1", tag]) and report.tags_skipped == {}
    assert skopeo.digest(f"{ecr.host}/{repo_name}:{tag}", ecr.credential) == signature.digest


def test_no_signatures_skips_a_signature_tag_asked_for_by_name(ghcr: GhcrStandin, ecr: EcrStandin,
        push_image: Pusher, repo_name: str) -> None:
    env = {**ghcr_env(ghcr), **ecr_env(ecr)}
    _, signature, tag = _signed(ghcr, push_image, repo_name)
    assert run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=["v1"], signatures=False).ok
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=[tag], digest=signature.digest,
                      signatures=False)
    assert report.ok and report.tags_skipped == {tag: NOT_WANTED} and report.tags_set == []
    assert not dest_has(ecr, repo_name, "manifests", signature.digest)


class _BeforeFirstManifestPush(httpx.BaseTransport):
    """Wraps the destination's transport: runs `hook` once, just before the first manifest PUT by digest."""

    def __init__(self, hook: Callable[[], None]) -> None:
        self.inner = httpx.HTTPTransport()
        self.hook = hook
        self.fired = False
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Run the hook before the first `PUT .../manifests/sha256:...`; pass everything through."""
        if request.method == "PUT" and "/manifests/sha256:" in request.url.path:
            with self._lock:
                fire, self.fired = not self.fired, True
            if fire:
                self.hook()
        return self.inner.handle_request(request)

    def close(self) -> None:
        """Close the wrapped transport."""
        self.inner.close()


class _TagLists(httpx.BaseTransport):
    """Wraps the source's transport and counts its `tags/list` requests."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.count = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Count tag listings; pass everything through."""
        self.count += request.url.path.endswith("/tags/list")
        return self.inner.handle_request(request)

    def close(self) -> None:
        """Close the wrapped transport."""
        self.inner.close()


def test_a_signature_pushed_while_its_image_is_copied_is_set_by_the_images_build(ghcr: GhcrStandin,
        ecr: EcrStandin, push_image: Pusher, repo_name: str) -> None:
    env = {**ghcr_env(ghcr), **ecr_env(ecr)}
    image = push_image(ghcr, repo_name, images.single_image(seed=repo_name), ("v1",))
    tag = images.signature_tag(image.digest)
    signature_builds: list[sync.Report] = []

    def sign_then_run_the_signatures_build() -> None:
        # The image's build listed the source's tags already and is about to push the image manifest.
        signature = push_image(ghcr, repo_name, images.cosign_signature(image.manifest), (tag,))
        signature_builds.append(run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=[tag],
                                         digest=signature.digest))

    hook = _BeforeFirstManifestPush(sign_then_run_the_signatures_build)
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=["v1"],
                      http_transports={"destination": hook})
    [signature_build] = signature_builds
    assert signature_build.ok and signature_build.tags_skipped == {tag: NOT_MIRRORED}  # the race: image not there
    assert report.ok, report.errors
    assert report.tags_set == ["v1", tag] and report.signatures == [tag]
    signature_digest = images.cosign_signature(image.manifest).digest
    assert skopeo.digest(f"{ecr.host}/{repo_name}:{tag}", ecr.credential) == signature_digest


def test_signatures_cost_one_listing_after_the_images_are_in_place_and_a_rerun_one_listing_too(
        ghcr: GhcrStandin, ecr: EcrStandin, push_image: Pusher, repo_name: str) -> None:
    env = {**ghcr_env(ghcr), **ecr_env(ecr)}
    _, _, tag = _signed(ghcr, push_image, repo_name)
    first, again = _TagLists(), _TagLists()
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=["v1"],
                      http_transports={"source": first})
    assert report.ok and report.tags_set == ["v1", tag] and first.count == 1
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=["v1"],
                      http_transports={"source": again})
    assert report.ok and report.tags_set == [] and report.tags_unchanged == ["v1", tag] and again.count == 1

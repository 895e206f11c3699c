"""Cosign tags asked for by name (their own registry_package event): set only next to the image they sign."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chalicelib.registry.signatures import NOT_MIRRORED, NOT_WANTED
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

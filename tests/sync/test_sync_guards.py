"""Our own guards, each tested against a registry that does not enforce the same rule (in-process wrappers
around the real registries): removing any one of them fails a test here."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from standins import images
from standins.faults import FaultProxy
from standins.ghcr_ecr import EcrStandin, GhcrStandin
from standins.push import PushedImage
from tests.support.engine_helpers import dest_has, ecr_env, ghcr_env, run_sync
from tests.support.permissive import PermissiveManifests, RewriteManifestBodies

Pusher = Callable[..., PushedImage]
Proxies = Callable[..., FaultProxy]
pytestmark = pytest.mark.registry
OTHER = "sha256:" + "e" * 64


def _env(ghcr: GhcrStandin, ecr: EcrStandin) -> dict[str, str]:
    return {**ghcr_env(ghcr, app_token=False), **ecr_env(ecr)}


def test_a_manifest_push_answered_with_another_digest_fails(ghcr: GhcrStandin, ecr: EcrStandin,
        push_image: Pusher, repo_name: str) -> None:
    push_image(ghcr, repo_name, images.single_image(seed=repo_name), ("v1",))
    permissive = PermissiveManifests(claim=OTHER)
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"],
                      http_transports={"destination": permissive})
    assert not report.ok and "digest mismatch" in report.cause().lower() and report.tags_set == []
    assert permissive.puts and not any(put == "v1" for put in permissive.puts)  # never tagged


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_manifest_bytes_that_do_not_match_their_digest_are_never_copied(ghcr: GhcrStandin, ecr: EcrStandin,
        push_image: Pusher, repo_name: str, by: str) -> None:
    image = push_image(ghcr, repo_name, images.single_image(seed=repo_name + by), ("v1",))
    # by tag: the explicit --tag is read by GET (header check); by digest: aliases resolve by HEAD, then GET @digest
    source = RewriteManifestBodies({"v1"} if by == "tag" else {image.digest})
    kwargs = {"tags": ["v1"]} if by == "tag" else {"digest": image.digest, "aliases": True}
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr),
                      http_transports={"source": source}, **kwargs)
    assert source.rewritten and not report.ok and "digest mismatch" in report.cause().lower()
    assert report.tags_set == [] and not dest_has(ecr, repo_name, "manifests", "v1")


def test_no_manifest_or_tag_is_pushed_over_a_failed_blob_even_where_the_registry_would_accept_it(
        ghcr: GhcrStandin, ecr: EcrStandin, fault_proxy: Proxies, push_image: Pusher, repo_name: str) -> None:
    index = push_image(ghcr, repo_name, images.multi_platform_index(seed=repo_name), ("v1",))
    broken = index.manifest.children[0]
    own_layer = broken.blobs[-1].digest  # this platform's own layer
    proxy = fault_proxy(ghcr)
    proxy.corrupt("GET", f"/blobs/{own_layer}$", count=-1)
    permissive = PermissiveManifests()
    report = run_sync(proxy.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"],
                      http_transports={"destination": permissive})
    assert not report.ok and report.tags_set == []
    assert broken.digest not in permissive.puts  # the image with the failed blob
    assert index.digest not in permissive.puts  # the index above it
    assert "v1" not in permissive.puts  # and its tag
    assert sorted(permissive.puts) == sorted(c.digest for c in index.manifest.children[1:])


def test_a_signature_follows_only_an_image_that_reached_the_destination(ghcr: GhcrStandin, ecr: EcrStandin,
        fault_proxy: Proxies, push_image: Pusher, repo_name: str) -> None:
    image = push_image(ghcr, repo_name, images.single_image(seed=repo_name), ("v1",))
    tag = images.signature_tag(image.digest)
    signature = push_image(ghcr, repo_name, images.cosign_signature(image.manifest), (tag,))
    proxy = fault_proxy(ghcr)
    proxy.corrupt("GET", f"/blobs/{image.manifest.blobs[-1].digest}$", count=-1)
    report = run_sync(proxy.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"])
    assert not report.ok and report.tags_set == [] and report.signatures == []
    assert not dest_has(ecr, repo_name, "manifests", tag)
    assert not dest_has(ecr, repo_name, "manifests", signature.digest)

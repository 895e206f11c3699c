"""Copies between real registries: digest-exact trees, only missing bytes, tags, signatures, credentials."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from standins import images, skopeo
from standins.faults import FaultProxy
from standins.ghcr_ecr import EcrStandin, GhcrStandin
from standins.push import PushedImage
from standins.registry import RegistryProcess
from tests.support.engine_helpers import ImmutableTags, ecr_env, ghcr_env, run_sync, secrets_of

Pusher = Callable[..., PushedImage]
Proxies = Callable[..., FaultProxy]
pytestmark = pytest.mark.registry


def _env(ghcr: GhcrStandin, ecr: EcrStandin, **kwargs: bool) -> dict[str, str]:
    return {**ghcr_env(ghcr, **kwargs), **ecr_env(ecr)}


def test_a_multi_platform_index_is_copied_digest_exact_with_every_child(ghcr: GhcrStandin, ecr: EcrStandin,
        pushed_index: PushedImage, repo_name: str) -> None:
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"])
    assert report.ok, report.errors
    source_tree = skopeo.manifest_tree(pushed_index.ref("v1"), ghcr.pusher)
    dest_tree = skopeo.manifest_tree(f"{ecr.host}/{repo_name}:v1", ecr.credential)
    assert dest_tree == source_tree == [pushed_index.digest, *pushed_index.child_digests]
    assert report.stats.manifests_copied == 4
    assert report.stats.blobs_copied == len(pushed_index.blobs)  # shared layers copied once
    assert report.stats.bytes_moved == pushed_index.blob_bytes
    assert report.tags_set == ["v1"] and report.digests == {"v1": pushed_index.digest}


def test_a_docker_manifest_list_keeps_its_media_types(ghcr: GhcrStandin, ecr: EcrStandin,
        pushed_manifest_list: PushedImage, repo_name: str) -> None:
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"])
    assert report.ok, report.errors
    raw = skopeo.inspect_raw(f"{ecr.host}/{repo_name}:v1", ecr.credential)
    assert json.loads(raw)["mediaType"] == images.DOCKER_LIST
    assert skopeo.manifest_tree(f"{ecr.host}/{repo_name}:v1", ecr.credential) == \
        skopeo.manifest_tree(pushed_manifest_list.ref("v1"), ghcr.pusher)


def test_copy_by_digest_brings_the_index_and_sets_no_tag(ghcr: GhcrStandin, ecr: EcrStandin,
        pushed_index: PushedImage, repo_name: str) -> None:
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), digest=pushed_index.digest)
    assert report.ok and report.tags_set == []
    assert skopeo.manifest_tree(f"{ecr.host}/{repo_name}@{pushed_index.digest}", ecr.credential) == [
        pushed_index.digest, *pushed_index.child_digests]


def test_only_missing_blobs_are_read_from_the_source(ghcr: GhcrStandin, ecr: EcrStandin, fault_proxy: Proxies,
        pushed_index: PushedImage, repo_name: str) -> None:
    proxy = fault_proxy(ghcr)
    env = _env(ghcr, ecr)
    first_child = pushed_index.manifest.children[0]
    assert run_sync(proxy.host, repo_name, ecr.host, repo_name, env, digest=first_child.digest).ok
    traffic = proxy.reset_traffic()
    assert traffic.blob_bytes == sum(b.size for b in first_child.all_blobs().values())
    report = run_sync(proxy.host, repo_name, ecr.host, repo_name, env, tags=["v1"])
    assert report.ok
    missing = set(pushed_index.blobs) - set(first_child.all_blobs())
    assert proxy.traffic.blob_bytes == sum(pushed_index.blobs[d] for d in missing)
    assert report.stats.manifests_skipped == 1  # the child already there: its own blobs are not even checked
    assert report.stats.blobs_skipped == 2  # the base layers it shares with the other platforms


def test_a_rerun_with_nothing_missing_reads_no_blob_and_sets_no_tag(ghcr: GhcrStandin, ecr: EcrStandin,
        fault_proxy: Proxies, pushed_index: PushedImage, repo_name: str) -> None:
    proxy, env = fault_proxy(ghcr), _env(ghcr, ecr)
    assert run_sync(proxy.host, repo_name, ecr.host, repo_name, env, tags=["v1"]).ok
    proxy.reset_traffic()
    report = run_sync(proxy.host, repo_name, ecr.host, repo_name, env, tags=["v1"])
    assert report.ok and report.tags_unchanged == ["v1"] and report.tags_set == []
    assert proxy.traffic.count("blob") == 0
    assert report.stats.manifests_skipped == 1 and report.stats.bytes_moved == 0


def test_an_extra_tag_on_a_digest_already_copied_moves_no_blob(ghcr: GhcrStandin, ecr: EcrStandin,
        fault_proxy: Proxies, push_image: Pusher, repo_name: str) -> None:
    image = images.multi_platform_index(seed=repo_name)
    push_image(ghcr, repo_name, image, ("v1",))
    env = _env(ghcr, ecr)
    assert run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=["v1"]).ok
    push_image(ghcr, repo_name, image, ("stable",))
    source, dest = fault_proxy(ghcr), fault_proxy(ecr)
    report = run_sync(source.host, repo_name, dest.host, repo_name, env, tags=["stable"])
    assert report.ok and report.tags_set == ["stable"]
    assert source.traffic.blob_bytes == 0 and source.traffic.count("blob") == 0
    assert dest.traffic.count("upload") == 0 and dest.traffic.count("blob") == 0
    assert skopeo.digest(f"{ecr.host}/{repo_name}:stable", ecr.credential) == image.digest


def test_a_tag_that_moved_follows_the_source_at_sync_time(ghcr: GhcrStandin, ecr: EcrStandin, push_image: Pusher,
        repo_name: str) -> None:
    env = _env(ghcr, ecr)
    push_image(ghcr, repo_name, images.single_image(seed=repo_name + "old"), ("latest",))
    assert run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=["latest"]).ok
    newer = push_image(ghcr, repo_name, images.single_image(seed=repo_name + "new"), ("latest",))
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=["latest"])
    assert report.ok and report.tags_set == ["latest"]
    assert skopeo.digest(f"{ecr.host}/{repo_name}:latest", ecr.credential) == newer.digest


def test_an_immutable_tag_held_elsewhere_is_a_conflict_while_other_tags_complete(ghcr: GhcrStandin,
        ecr: EcrStandin, push_image: Pusher, repo_name: str) -> None:
    env = _env(ghcr, ecr)
    push_image(ghcr, repo_name, images.single_image(seed=repo_name + "a"), ("v1", "v2"))
    assert run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=["v1"]).ok
    moved = push_image(ghcr, repo_name, images.single_image(seed=repo_name + "b"), ("v1",))
    immutable = ImmutableTags()
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=["v1", "v2"],
                      http_transports={"destination": immutable})
    assert not report.ok and report.exit_code == 1
    assert report.tags_set == ["v2"]
    assert len(report.conflicts) == 1 and ":v1 cannot move to " + moved.digest in report.conflicts[0]
    assert "immutable" in report.cause()


def test_a_tag_already_on_the_digest_is_not_pushed_again_in_an_immutable_repository(ghcr: GhcrStandin,
        ecr: EcrStandin, pushed_index: PushedImage, repo_name: str) -> None:
    env = _env(ghcr, ecr)
    assert run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=["v1"]).ok
    immutable = ImmutableTags()
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=["v1"],
                      http_transports={"destination": immutable})
    assert report.ok and report.tags_unchanged == ["v1"] and immutable.tag_puts == []


def test_cosign_signature_tags_of_copied_digests_come_along(ghcr: GhcrStandin, ecr: EcrStandin,
        push_image: Pusher, repo_name: str) -> None:
    image = push_image(ghcr, repo_name, images.multi_platform_index(seed=repo_name), ("v1",))
    signature_tag = images.signature_tag(image.digest)
    signature = push_image(ghcr, repo_name, images.cosign_signature(image.manifest), (signature_tag,))
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1"])
    assert report.ok and report.signatures == [signature_tag]
    assert skopeo.digest(f"{ecr.host}/{repo_name}:{signature_tag}", ecr.credential) == signature.digest


def test_no_signatures_leaves_cosign_tags_behind(ghcr: GhcrStandin, ecr: EcrStandin,
        new_repo_name: Callable[..., str], push_image: Pusher) -> None:
    repo = new_repo_name()
    image = push_image(ghcr, repo, images.single_image(seed=repo), ("v1",))
    push_image(ghcr, repo, images.cosign_signature(image.manifest), (images.signature_tag(image.digest),))
    report = run_sync(ghcr.host, repo, ecr.host, repo, _env(ghcr, ecr), tags=["v1"], signatures=False)
    assert report.ok and report.signatures == []
    assert skopeo.list_tags(f"{ecr.host}/{repo}", ecr.credential) == ["v1"]


def test_all_tags_filtered_by_globs(ghcr: GhcrStandin, ecr: EcrStandin, push_image: Pusher, repo_name: str) -> None:
    image = images.single_image(seed=repo_name)
    push_image(ghcr, repo_name, image, ("v1", "v2-rc1", "latest", "main"))
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tag_globs="v*,latest,!*-rc*")
    assert report.ok
    assert sorted(skopeo.list_tags(f"{ecr.host}/{repo_name}", ecr.credential)) == ["latest", "v1"]


def test_all_tags_mirrors_every_tag_and_the_signatures_of_their_digests(ghcr: GhcrStandin, ecr: EcrStandin,
        push_image: Pusher, repo_name: str) -> None:
    first = push_image(ghcr, repo_name, images.single_image(seed=repo_name + "1"), ("v1", "latest"))
    push_image(ghcr, repo_name, images.single_image(seed=repo_name + "2"), ("v2",))
    signature_tag = images.signature_tag(first.digest)
    push_image(ghcr, repo_name, images.cosign_signature(first.manifest), (signature_tag,))
    orphan = images.signature_tag("sha256:" + "0" * 64)  # signs nothing being copied
    push_image(ghcr, repo_name, images.cosign_signature("sha256:" + "0" * 64), (orphan,))
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), all_tags=True)
    assert report.ok, report.errors
    assert sorted(skopeo.list_tags(f"{ecr.host}/{repo_name}", ecr.credential)) == sorted(
        ["v1", "latest", "v2", signature_tag])


def test_a_denied_installation_token_falls_back_to_the_operator_credential(ghcr: GhcrStandin, ecr: EcrStandin,
        pushed_index: PushedImage, repo_name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr, fallback_json=True), tags=["v1"])
    assert report.ok, report.errors
    assert report.credentials_tried == ["installation token", "anonymous", "fallback token"]
    asked = [u for u in ghcr.usernames_tried(repo_name) if u != ghcr.pusher.username]
    assert asked[:3] == ["x-access-token", None, ghcr.fallback.username]
    assert set(asked[3:]) <= {ghcr.fallback.username}  # once one works, the chain stays on it
    assert "source credential 'installation token' denied" in caplog.text
    logged = caplog.text + json.dumps(report.to_dict())
    for secret in secrets_of(ghcr, ecr):
        assert secret not in logged


def test_without_a_fallback_a_private_package_is_denied_by_name(ghcr: GhcrStandin, ecr: EcrStandin,
        pushed_index: PushedImage, repo_name: str) -> None:
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr, fallback=False), tags=["v1"])
    assert not report.ok
    cause = report.cause()
    assert f"access to http://{ghcr.host}/{repo_name} denied (tried: installation token, anonymous)" in cause
    assert "GHCR2ECR_SOURCE_FALLBACK_TOKEN" in cause
    serialized = json.dumps(report.to_dict())
    for secret in secrets_of(ghcr, ecr):
        assert secret not in cause and secret not in serialized


def test_a_public_package_syncs_with_the_installation_token_alone(ghcr: GhcrStandin, ecr: EcrStandin,
        push_image: Pusher, public_repo_name: str) -> None:
    push_image(ghcr, public_repo_name, images.single_image(seed=public_repo_name), ("v1",))
    report = run_sync(ghcr.host, public_repo_name, ecr.host, public_repo_name, _env(ghcr, ecr, fallback=False),
                      tags=["v1"])
    assert report.ok and report.credentials_tried == ["installation token"]


def test_a_missing_tag_is_reported_and_nothing_else_is_blocked(ghcr: GhcrStandin, ecr: EcrStandin,
        pushed_index: PushedImage, repo_name: str) -> None:
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1", "nope"])
    assert not report.ok and report.tags_set == ["v1"], report.errors
    assert report.cause() == f"tag 'nope' not found in http://{ghcr.host}/{repo_name}"


def test_within_one_registry_blobs_are_mounted_not_copied(plain_registry: RegistryProcess, push_image: Pusher,
        new_repo_name: Callable[..., str]) -> None:
    source_repo, dest_repo = new_repo_name(), new_repo_name()
    pushed = push_image(plain_registry, source_repo, images.multi_platform_index(seed=source_repo), ("v1",))
    report = run_sync(plain_registry.host, source_repo, plain_registry.host, dest_repo, {}, tags=["v1"])
    assert report.ok, report.errors
    assert report.stats.blobs_mounted == len(pushed.blobs) and report.stats.bytes_moved == 0
    assert skopeo.digest(f"{plain_registry.host}/{dest_repo}:v1") == pushed.digest


def test_a_malformed_fallback_credential_stops_the_sync_naming_the_variable(ghcr: GhcrStandin, ecr: EcrStandin,
        repo_name: str) -> None:
    env = {**_env(ghcr, ecr), "GHCR2ECR_SOURCE_FALLBACK_TOKEN": '{"username": "x"}'}
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=["v1"])
    assert not report.ok and "GHCR2ECR_SOURCE_FALLBACK_TOKEN" in report.cause()


def test_an_artifact_with_a_subject_is_copied_byte_exact(ghcr: GhcrStandin, ecr: EcrStandin, push_image: Pusher,
                                                          repo_name: str) -> None:
    image = push_image(ghcr, repo_name, images.single_image(seed=repo_name), ("v1",))
    sbom = push_image(ghcr, repo_name, images.artifact(image.manifest), ("v1-sbom",))
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), tags=["v1", "v1-sbom"])
    assert report.ok, report.errors
    raw = skopeo.inspect_raw(f"{ecr.host}/{repo_name}:v1-sbom", ecr.credential)
    assert skopeo.digest(f"{ecr.host}/{repo_name}:v1-sbom", ecr.credential) == sbom.digest
    assert json.loads(raw)["subject"]["digest"] == image.digest


def test_the_build_case_digest_and_tag_sets_the_tag_where_it_points_now(ghcr: GhcrStandin, ecr: EcrStandin,
                                                                         push_image: Pusher, repo_name: str) -> None:
    announced = push_image(ghcr, repo_name, images.multi_platform_index(seed=repo_name + "a"), ("v1",))
    current = push_image(ghcr, repo_name, images.multi_platform_index(seed=repo_name + "b"), ("v1",))
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, _env(ghcr, ecr), digest=announced.digest,
                      tags=["v1"])
    assert report.ok, report.errors
    assert skopeo.digest(f"{ecr.host}/{repo_name}:v1", ecr.credential) == current.digest
    assert skopeo.digest(f"{ecr.host}/{repo_name}@{announced.digest}", ecr.credential) == announced.digest

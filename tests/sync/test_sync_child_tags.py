"""An index tagged `v1` and `latest` with `v1-arm64` on its arm64 child (per-platform images pushed first,
then `docker buildx imagetools create`): every run sets all three tags, at the default concurrency."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from standins import images, skopeo
from standins.push import PushedImage
from standins.registry import RegistryProcess
from tests.support.engine_helpers import run_sync

Pusher = Callable[..., PushedImage]
pytestmark = pytest.mark.registry
RUNS = 50


def child_tagged_index(seed: str) -> images.Manifest:
    """Two small platform images (one tiny layer each) under an index."""
    children = []
    for platform in images.DEFAULT_PLATFORMS[:2]:
        name = "-".join(platform.values())
        layer = images.tar_gz_layer(f"{seed}/{name}", files=1, file_size=64)
        config = images.config_blob(dict(platform), [layer], f"{seed}/{name}")
        children.append(images.image_manifest(config, [layer], platform=dict(platform)))
    return images.index(children)


def test_an_index_with_a_tagged_child_sets_every_tag_fifty_runs_in_a_row(plain_registry: RegistryProcess,
        push_image: Pusher, repo_name: str) -> None:
    # The race is the destination's (docker-registry here; ECR is not assumed safer): no auth, to keep it fast.
    index = child_tagged_index(repo_name)
    arm64 = index.children[1]
    push_image(plain_registry, repo_name, arm64, ("v1-arm64",))
    push_image(plain_registry, repo_name, index, ("v1", "latest"))
    failures = []
    for run in range(RUNS):
        dest = f"{repo_name}-copy{run}"
        report = run_sync(plain_registry.host, repo_name, plain_registry.host, dest, {}, all_tags=True)
        if not report.ok or sorted(report.tags_set) != ["latest", "v1", "v1-arm64"]:
            failures.append((run, report.errors, report.tags_set))
    assert failures == []
    last = f"{plain_registry.host}/{repo_name}-copy{RUNS - 1}"
    assert skopeo.digest(f"{last}:v1-arm64") == arm64.digest and skopeo.digest(f"{last}:latest") == index.digest

"""Absurd manifest trees (1,000 levels deep, 2,000 children) are refused before any byte moves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.sync.copy import MAX_CHILDREN, MAX_DEPTH, push_levels
from chalicelib.registry.manifests import OCI_INDEX, Manifest, sha256_digest
from standins import images
from standins.hostile import HostileRegistry
from tests.support.engine_helpers import run_sync

pytestmark = pytest.mark.timeout(60)
SHORT = {"GHCR2ECR_REQUEST_DEADLINE": "2", "GHCR2ECR_REQUEST_GIVE_UP": "4"}


def _index_over(descriptors: list[dict]) -> tuple[str, bytes]:
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}).encode()
    return sha256_digest(raw), raw


def _nested(source: HostileRegistry, depth: int) -> str:
    """Serve an image under `depth - 1` indexes, each naming the one below; tag the top `v1`."""
    image = images.single_image(seed=f"nested-{depth}")
    source.serve(image)
    below: dict[str, Any] = {"mediaType": image.media_type, "digest": image.digest, "size": len(image.raw)}
    for _ in range(depth - 1):
        digest, raw = _index_over([below])
        source.manifests[digest] = (OCI_INDEX, raw)
        below = {"mediaType": OCI_INDEX, "digest": digest, "size": len(raw)}
    source.manifests["v1"] = source.manifests[below["digest"]]
    return below["digest"]


@pytest.fixture
def dest() -> Iterator[HostileRegistry]:
    """A destination that records what it receives."""
    with HostileRegistry("dst/app") as server:
        yield server


def _moved(dest: HostileRegistry) -> list[str]:
    return [f"{r.method} {r.path}" for r in dest.requests if r.method in ("POST", "PUT", "PATCH")]


def test_a_tree_nested_1000_deep_is_refused_before_any_byte_moves(dest: HostileRegistry) -> None:
    with HostileRegistry("octo/app") as source:
        top = _nested(source, 1000)
        report = run_sync(source.host, "octo/app", dest.host, "dst/app", dict(SHORT), tags=["v1"])
    assert not report.ok
    assert report.cause() == f"{report.source}@{top}: manifests nested more than {MAX_DEPTH} deep; " \
                             "refused before copying"
    assert _moved(dest) == [] and dest.blobs == {} and report.stats.bytes_moved == 0
    assert sum(1 for r in source.requests if "/manifests/" in r.path) <= MAX_DEPTH + 2  # it stopped reading


def test_a_tree_within_the_depth_limit_is_copied(dest: HostileRegistry) -> None:
    with HostileRegistry("octo/app") as source:
        top = _nested(source, MAX_DEPTH)
        report = run_sync(source.host, "octo/app", dest.host, "dst/app", dict(SHORT), tags=["v1"])
    assert report.ok, report.errors
    assert report.stats.manifests_copied == MAX_DEPTH and dest.manifests["v1"][1] == source.manifests[top][1]


def test_an_index_naming_too_many_children_is_refused_before_any_byte_moves(dest: HostileRegistry) -> None:
    image = images.single_image(seed="wide")
    fake = [{"mediaType": images.OCI_MANIFEST, "digest": sha256_digest(b"%d" % i), "size": 2} for i in range(2000)]
    digest, raw = _index_over([{"mediaType": image.media_type, "digest": image.digest, "size": len(image.raw)},
                               *fake])
    with HostileRegistry("octo/app").serve(image) as source:
        source.manifests["v1"] = source.manifests[digest] = (OCI_INDEX, raw)
        report = run_sync(source.host, "octo/app", dest.host, "dst/app", dict(SHORT), tags=["v1"])
    assert not report.ok and f"an index naming 2001 manifests (more than {MAX_CHILDREN})" in report.cause()
    assert _moved(dest) == [] and report.stats.bytes_moved == 0


def test_push_levels_walks_any_depth_without_recursion() -> None:
    chain: list[Manifest] = []
    below: dict[str, Any] = {"mediaType": images.OCI_MANIFEST, "digest": sha256_digest(b"leaf"), "size": 4}
    chain.append(Manifest(digest=below["digest"], media_type=images.OCI_MANIFEST, raw=b"{}"))
    for _ in range(5000):
        digest, raw = _index_over([below])
        chain.append(Manifest(digest=digest, media_type=OCI_INDEX, raw=raw))
        below = {"mediaType": OCI_INDEX, "digest": digest, "size": len(raw)}
    levels = push_levels(list(reversed(chain)))
    assert levels[chain[0].digest] == 0 and levels[chain[-1].digest] == 5000

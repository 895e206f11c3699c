"""The sync's bounds: its deadline, the bulk read of an ECR destination's tags, the order of tag writes."""

from __future__ import annotations

import json
from collections.abc import Callable

import boto3
import pytest

from chalicelib.sync.dest_state import list_ecr_images
from chalicelib.sync.bounds import Deadline, bounded_map
from chalicelib.registry.manifests import Manifest
from chalicelib.sync.tagging import tag_waves
from standins import images
from standins.aws import aws_variables
from standins.ghcr_ecr import EcrStandin, GhcrStandin
from standins.push import PushedImage
from tests.support.engine_helpers import dest_has, ecr_env, ghcr_env, run_sync

Pusher = Callable[..., PushedImage]


def _manifest(image: images.Manifest) -> Manifest:
    return Manifest(image.digest, image.media_type, image.raw)


def test_tags_are_written_children_first_and_one_digest_at_a_time() -> None:
    index = images.multi_platform_index(seed="waves")
    known = {m.digest: _manifest(m) for m in index.walk()}
    arm64, other = index.children[1].digest, images.single_image(seed="other").digest
    waves = tag_waves({"v1": index.digest, "latest": index.digest, "v1-arm64": arm64, "x": other}, known)
    assert waves == [[["v1-arm64"], ["x"]], [["v1", "latest"]]]


def test_bounded_map_keeps_order_and_a_bounded_number_of_futures_in_flight() -> None:
    from concurrent.futures import Future, ThreadPoolExecutor

    submitted: list[int] = []
    with ThreadPoolExecutor(4) as pool:
        original = pool.submit

        def submit(fn: Callable[[int], int], item: int) -> Future[int]:
            submitted.append(item)
            return original(fn, item)

        pool.submit = submit  # type: ignore[method-assign, assignment]
        results = bounded_map(pool, lambda n: n * 2, range(1000), window=8)
        first = [next(results) for _ in range(3)]
        assert first == [0, 2, 4] and len(submitted) <= 8 + 3
        assert first + list(results) == [n * 2 for n in range(1000)]


def test_a_deadline_counts_from_its_start() -> None:
    now = [100.0]
    deadline = Deadline(5, clock=lambda: now[0])
    assert not deadline.expired()
    now[0] = 105.0
    assert deadline.expired() and not Deadline(None).expired()


@pytest.mark.registry
def test_past_the_deadline_nothing_new_starts_the_report_says_what_is_undone_and_the_next_run_finishes(
        ghcr: GhcrStandin, ecr: EcrStandin, push_image: Pusher, repo_name: str) -> None:
    image = push_image(ghcr, repo_name, images.multi_platform_index(seed=repo_name), ("v1",))
    env = {**ghcr_env(ghcr, app_token=False), **ecr_env(ecr)}
    report = run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=["v1"], deadline=1e-9)
    assert not report.ok and report.exit_code == 1 and report.left_undone == ["v1"]
    assert report.cause().startswith("deadline of 1e-09s reached: 1 tag(s) left undone (v1)")
    assert report.stats.bytes_moved == 0 and report.to_dict()["left_undone"] == ["v1"]
    assert not dest_has(ecr, repo_name, "manifests", "v1")
    again = run_sync(ghcr.host, repo_name, ecr.host, repo_name, env, tags=["v1"], deadline=3600)
    assert again.ok and again.tags_set == ["v1"] and again.left_undone == []
    assert dest_has(ecr, repo_name, "manifests", image.digest)


def test_an_ecr_destinations_tags_are_read_in_bulk_with_list_images(moto_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in aws_variables(moto_url).items():
        monkeypatch.setenv(name, value)
    client = boto3.client("ecr")
    name = "ghcr/octo/bulk-read"
    client.create_repository(repositoryName=name)
    for n, tags in enumerate((["v1", "latest"], ["v0"])):
        image = images.single_image(seed=f"bulk{n}")
        for tag in tags:
            client.put_image(repositoryName=name, imageManifest=image.raw.decode(), imageTag=tag,
                             imageManifestMediaType=image.media_type)
    client.put_image(repositoryName=name, imageManifest=json.dumps(images.single_image(seed="untagged").json()))
    described = client.describe_images(repositoryName=name)["imageDetails"]  # moto's own digests
    expected = {tag: d["imageDigest"] for d in described for tag in d.get("imageTags", [])}
    assert sorted(expected) == ["latest", "v0", "v1"] and expected["v1"] == expected["latest"] != expected["v0"]
    assert list_ecr_images(client, name) == expected
    assert list_ecr_images(client, "ghcr/octo/not-there") == {}

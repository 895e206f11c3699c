"""Helpers for mirroring a release series: a proxy that logs the source's blob GETs, skopeo's check of both sides.

The proxy is the fault proxy of `standins/faults.py` (no fault injected) that also records which blob each
GET fetched and how many body bytes went back for it, so a test can tell that no byte of a blob the
destination already has left the source.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from chalicelib.registry.limits import Limits
from standins import skopeo
from standins.faults import FaultProxy
from standins.ghcr_ecr import GhcrStandin
from standins.releases import Release, expected_tags
from standins.tokens import Credential

_BLOB_GET = re.compile(r"^/v2/(.+)/blobs/(sha256:[a-f0-9]{64})$")


class BlobLog(FaultProxy):
    """A pass-through proxy that records every blob GET: repository, digest and the body bytes sent back."""

    def __init__(self, upstream: str, token_upstream: str | None = None) -> None:
        super().__init__(upstream, token_upstream)
        self.gets: list[tuple[str, str, int]] = []
        self._log_lock = threading.Lock()

    def count(self, method: str, path: str, blob_bytes: int, body_bytes: int) -> None:
        """Count the request as the fault proxy does, and log a blob GET by digest."""
        super().count(method, path, blob_bytes, body_bytes)
        match = _BLOB_GET.match(path.split("?", 1)[0])
        if method == "GET" and match:
            with self._log_lock:
                self.gets.append((match.group(1), match.group(2), blob_bytes))

    def fetched(self, repository: str | None = None) -> dict[str, list[int]]:
        """Return digest -> the body bytes of each GET of it (of one repository, or all), since the last clear."""
        found: dict[str, list[int]] = {}
        with self._log_lock:
            for repo, digest, sent in self.gets:
                if repository in (None, repo):
                    found.setdefault(digest, []).append(sent)
        return found

    def clear_log(self) -> None:
        """Forget the blob GETs logged so far."""
        with self._log_lock:
            self.gets.clear()


@pytest.fixture
def ghcr_log(ghcr: GhcrStandin) -> Iterator[BlobLog]:
    """A BlobLog in front of the GHCR stand-in and its token server (its `host` replaces the stand-in's)."""
    proxy = BlobLog(ghcr.url, ghcr.tokens.url).start()
    yield proxy
    proxy.stop()


def assert_head_declares_size(url: str, repository: str, blobs: dict[str, int], credential: Credential) -> None:
    """Assert the destination answers a blob HEAD with `Content-Length: <blob size>`, a size over the body cap.

    This is the answer ECR and GHCR give (docker-registry gives it too) that an engine reading it as a
    body refuses as too large.
    """
    cap = Limits().max_body
    assert blobs and all(size > cap for size in blobs.values())
    auth = (credential.username, credential.password)
    with httpx.Client(auth=auth, timeout=30) as client:
        for digest, size in blobs.items():
            response = client.head(f"{url}/v2/{repository}/blobs/{digest}")
            assert response.status_code == 200, (digest, response.status_code)
            assert response.headers.get("content-length") == str(size), response.headers


def assert_moved_only_new(report: dict, fetched: dict[str, list[int]], new: dict[str, int],
                          shared: dict[str, int]) -> None:
    """Assert the report skipped the shared blobs and copied the new ones, and the source sent each new one once."""
    assert report["ok"], report["errors"]
    assert report["blobs"] == {"copied": len(new), "skipped": len(shared), "mounted": 0}, report["blobs"]
    assert report["bytes_moved"] == sum(new.values())
    assert fetched == {digest: [size] for digest, size in new.items()}  # not one GET of a shared blob


def tag_changes(releases: list[Release], number: int) -> tuple[set[str], set[str]]:
    """Return the tags that mirroring release `number` onto the ones before it sets (new or moved), and the rest."""
    before, after = expected_tags(releases[:number]), expected_tags(releases[:number + 1])
    changed = {tag for tag, digest in after.items() if before.get(tag) != digest}
    return changed, set(after) - changed


def expected_trees(releases: Iterable[Release]) -> dict[str, list[str]]:
    """Return digest -> [digest, child digests...] of every index and signature of the releases."""
    trees: dict[str, list[str]] = {}
    for release in releases:
        trees[release.digest] = [release.digest, *(child.digest for child in release.index.children)]
        trees[release.signature.digest] = [release.signature.digest]
    return trees


@dataclass(frozen=True)
class Side:
    """One end as skopeo reads it: `HOST/REPOSITORY` and the credential to read it with."""

    repository: str
    credential: Credential | None

    def run(self, read: Callable[[str, Credential | None], object], reference: str) -> object:
        """Read `repository:tag` or `repository@digest` with one of skopeo's readers."""
        sep = "@" if reference.startswith("sha256:") else ":"
        return read(f"{self.repository}{sep}{reference}", self.credential)


@dataclass
class Oracle:
    """skopeo's view of both ends of one mirror: every tag each time, each digest's tree once (content-addressed)."""

    source: Side
    dest: Side
    verified: set[str] = field(default_factory=set)

    def assert_mirrored(self, releases: list[Release]) -> None:
        """Assert both sides hold exactly the releases' tags, each on the expected digest, and every digest's
        tree (the index and each child, read back by digest) is the expected one on both sides."""
        tags, trees = expected_tags(releases), expected_trees(releases)
        sides = (self.source, self.dest)
        with ThreadPoolExecutor(max_workers=4) as pool:
            listed = list(pool.map(lambda side: sorted(skopeo.list_tags(side.repository, side.credential)), sides))
            assert listed == [sorted(tags), sorted(tags)]
            reads = [(side, tag) for tag in tags for side in sides]
            for (side, tag), digest in zip(reads, pool.map(lambda item: item[0].run(skopeo.digest, item[1]), reads)):
                assert digest == tags[tag], (side.repository, tag)
            walks = [(side, digest) for digest in trees if digest not in self.verified for side in sides]
            for (side, digest), tree in zip(walks, pool.map(lambda item: item[0].run(skopeo.manifest_tree, item[1]),
                                                            walks)):
                assert tree == trees[digest], (side.repository, digest)
        self.verified.update(trees)

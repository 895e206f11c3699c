"""What the destination's tags point at now, read in bulk where the registry allows it.

ECR: `ListImages` (up to 1,000 image ids a page) gives every tag → digest pair at once, so a tag that is
already right costs nothing more. Elsewhere: `tags/list` says which tags exist, and one HEAD per tag of
interest among them gives its digest (a tag the destination lacks costs nothing).
A repository that does not exist yet holds no tags. An ECR listing that fails (a role without
`ecr:ListImages`, say) falls back to the registry API.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.sync.bounds import bounded_map
from chalicelib.sync.copy import Copier
from chalicelib.registry.errors import RegistryError
from chalicelib.registry.manifests import tag_pages, head_manifest
from chalicelib.registry.reference import DIGEST_PATTERN, TAG_PATTERN

log = logging.getLogger(__name__)


def list_ecr_images(client: Any, repository: str) -> dict[str, str] | None:
    """Return tag → digest of an ECR repository from ListImages ({} when it does not exist yet)."""
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"repositoryName": repository, "filter": {"tagStatus": "TAGGED"}, "maxResults": 1000}
    try:
        while True:
            page = client.list_images(**kwargs)
            for image in page.get("imageIds", []):
                tag, digest = image.get("imageTag"), image.get("imageDigest")
                if isinstance(tag, str) and isinstance(digest, str) and TAG_PATTERN.fullmatch(tag) \
                        and DIGEST_PATTERN.fullmatch(digest):
                    tags[tag] = digest
            if not page.get("nextToken"):
                return tags
            kwargs["nextToken"] = page["nextToken"]
    except client.exceptions.RepositoryNotFoundException:
        return {}


class DestinationState:
    """Tag → digest in the destination, loaded once (bulk) or per tag (HEAD), cached."""

    def __init__(self, copier: Copier, pool: ThreadPoolExecutor, ecr: Callable[[], Any] | None = None) -> None:
        self.copier, self.pool = copier, pool
        self.tags: dict[str, str | None] = {}
        self.bulk = False  # every tag of the destination is in self.tags
        self._existing: set[str] | None = None  # the destination's tag names (registry API path)
        self.empty = False  # load() found no tag at all (a new repository, or one never tagged)
        self._ecr = ecr

    def load(self) -> None:
        """Read the destination's tags in bulk (ECR) or their names (elsewhere)."""
        if self._ecr is not None:
            try:
                listed = list_ecr_images(self._ecr(), self.copier.dest.repository.name)
            except Exception as exc:  # botocore errors: AccessDenied on ListImages, throttling after retries
                log.info("listing ECR images failed (%s); reading tags through the registry API", type(exc).__name__)
            else:
                self.tags.update(listed or {})
                self.bulk, self.empty = True, not listed
                return
        dest = self.copier.dest
        names: set[str] = set()
        try:
            for page in tag_pages(dest, f"/v2/{dest.repository.name}/tags/list?n=1000"):
                if page is None:  # the repository does not exist yet
                    break
                names.update(page)
        except RegistryError as exc:  # a registry that will not list: HEAD every tag of interest instead
            log.info("listing the destination's tags failed (%s); checking each tag by HEAD", exc)
            return
        self._existing, self.empty = names, not names

    def exists(self, tag: str) -> bool:
        """Tell whether the destination has this tag at all (without a HEAD)."""
        if self.bulk:
            return tag in self.tags
        return self._existing is None or tag in self._existing

    def digests(self, tags: Iterable[str]) -> dict[str, str | None]:
        """Return tag → digest for these tags (None: absent), HEADing only tags that exist and are unknown."""
        tags = list(dict.fromkeys(tags))
        for tag in tags:
            if tag not in self.tags and not self.exists(tag):
                self.tags[tag] = None  # known absent: setting it later needs no HEAD
        todo = [t for t in tags if t not in self.tags]
        for tag, head in zip(todo, bounded_map(self.pool, self._head, todo)):
            self.tags[tag] = head
        return {tag: self.tags.get(tag) for tag in tags}

    def _head(self, tag: str) -> str | None:
        """HEAD one destination tag for its digest."""
        head = head_manifest(self.copier.dest, tag, actions="pull,push")
        return head.digest if head is not None and DIGEST_PATTERN.fullmatch(head.digest) else None

    def shared(self) -> set[str]:
        """Return the known tags whose digest other known tags share (floating aliases: v1, latest)."""
        count = Counter(d for d in self.tags.values() if d)
        return {tag for tag, digest in self.tags.items() if digest and count[digest] > 1}

    def note(self, tag: str, digest: str) -> None:
        """Record that a tag now points at a digest (after setting it)."""
        self.tags[tag] = digest

"""The run's one view of the source's tags: listed once (bounded), resolved lazily, digest → tags.

Tag names come from `tags/list` (every page, up to MAX_LISTED_TAGS); a tag's digest from one HEAD
(`Docker-Content-Digest`), or from the GET of a tag whose manifest the run needs anyway. Aliases,
signatures and the tag selection of --all-tags / --tags all read from here, so nothing is listed or
resolved twice. HEADs count against the sync's budget, spent by the caller in its priority order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from chalicelib.sync.bounds import bounded_map
from chalicelib.sync.copy import Copier
from chalicelib.registry.errors import AccessDenied, CopyError, RegistryError
from chalicelib.registry.manifests import tag_pages, head_manifest
from chalicelib.registry.reference import DIGEST_PATTERN, TAG_PATTERN

MAX_LISTED_TAGS = 100_000  # beyond this a listing is truncated, and the report says so


class SourceIndex:
    """Tags of the source repository and the digests they point at, read once each."""

    def __init__(self, copier: Copier, pool: ThreadPoolExecutor, max_tags: int = MAX_LISTED_TAGS) -> None:
        self.copier, self.pool, self.max_tags = copier, pool, max_tags
        self.digests: dict[str, str | None] = {}  # tag -> digest (None: the source does not have it)
        self.heads = 0  # source HEADs spent resolving tags
        self.listings = 0
        self.truncated: str | None = None  # why the listing is incomplete
        self._listed: list[str] | None = None

    def listed(self) -> list[str]:
        """Return the source's tags, listing them on first use; a repository the source lacks is an error."""
        if self._listed is None:
            self._listed = self._list()
        return self._listed

    def relist(self) -> list[str]:
        """List the tags again (tags pushed meanwhile appear); digests resolved so far stay cached."""
        self._listed = self._list()
        return self._listed

    def _list(self) -> list[str]:
        """Read every page of tags/list, keeping well-formed tags, up to max_tags."""
        source = self.copier.source
        self.listings += 1
        tags: dict[str, None] = {}
        for page in tag_pages(source, f"/v2/{source.repository.name}/tags/list?n=1000"):
            if page is None:
                raise RegistryError("GET", f"{source.repository}/tags/list", 404,
                                    detail="repository not found in the source")
            for tag in page:
                if TAG_PATTERN.fullmatch(tag):  # a source never lists an ill-formed tag; a hostile one may
                    tags[tag] = None
            if len(tags) >= self.max_tags:
                self.truncated = f"the source lists more than {self.max_tags} tags: only the first {self.max_tags} " \
                                 "were considered"
                break
        return list(tags)[: self.max_tags]

    def fetch(self, tags: Sequence[str]) -> dict[str, str | None]:
        """Resolve tags by GET (their manifests are needed anyway); return tag -> digest or None."""
        for tag, manifest in zip(tags, bounded_map(self.pool, self.copier.fetch, tags)):
            self.digests[tag] = manifest.digest if manifest is not None else None
        return {tag: self.digests[tag] for tag in tags}

    def resolve(self, tags: Iterable[str], *, read: bool = False) -> dict[str, str | None]:
        """Resolve tags by HEAD, each at most once per run; return tag -> digest or None.

        `read`: by GET instead, one request each all the same, when the run will need their manifests
        (a first copy of every tag): plan() then finds them read, a round trip and a request fewer per digest.
        """
        todo = [t for t in dict.fromkeys(tags) if t not in self.digests]
        self.heads += len(todo)
        for tag, digest in zip(todo, bounded_map(self.pool, self._read if read else self._head, todo)):
            self.digests[tag] = digest
        return {tag: self.digests[tag] for tag in tags}

    def _read(self, tag: str) -> str | None:
        """GET one tag's manifest (kept by the copier); return its digest.

        A manifest this client cannot take (schema 1, a digest that does not match) fails its own tree later,
        as after a HEAD, not the whole run: its digest then comes from a HEAD (the error stands when the HEAD
        gives none).
        """
        try:
            manifest = self.copier.fetch(tag)
        except AccessDenied:
            raise
        except CopyError:
            digest = self._head_digest(tag)
            if digest is None:
                raise
            return digest
        return manifest.digest if manifest is not None else None

    def _head_digest(self, tag: str) -> str | None:
        """HEAD one tag: its digest, or None when the source lacks it or sends no usable digest header."""
        head = head_manifest(self.copier.source, tag)
        return head.digest if head is not None and DIGEST_PATTERN.fullmatch(head.digest) else None

    def _head(self, tag: str) -> str | None:
        """HEAD one tag; fall back to GET when the source sends no usable digest header."""
        head = head_manifest(self.copier.source, tag)
        if head is None:
            return None
        if DIGEST_PATTERN.fullmatch(head.digest):
            return head.digest
        manifest = self.copier.fetch(tag)
        return manifest.digest if manifest is not None else None

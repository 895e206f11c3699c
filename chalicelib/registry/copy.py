"""Copy manifest trees between two repositories: only what the destination lacks, children first.

Three phases, so nothing is ever referenced before it exists (and an interrupted run leaves at most
unreferenced blobs, which the next run skips by HEAD):
1. plan: for each wanted digest the destination lacks, read the manifest from the source; an index
   brings every child. A manifest the destination already has is skipped with its whole tree: the
   registry only accepted it once everything it references was there.
2. blobs: config and layers of every planned image, deduplicated, each HEAD-checked on the destination
   and copied (or mounted) when missing, `concurrency` at a time.
3. manifests: PUT by digest, children before parents; a manifest with a failed blob or child is not
   pushed, and neither is anything above it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from chalicelib.registry.blobs import blob_exists, copy_blob_with_retries
from chalicelib.registry.errors import AccessDenied, DigestMismatch, RegistryError, UnsupportedManifest
from chalicelib.registry.manifests import Descriptor, Manifest, get_manifest, head_manifest, put_manifest
from chalicelib.registry.transport import Transport

log = logging.getLogger(__name__)
CopyError = (RegistryError, DigestMismatch, UnsupportedManifest)


@dataclass
class Stats:
    """Counters for the report, safe to update from worker threads."""

    manifests_copied: int = 0
    manifests_skipped: int = 0
    blobs_copied: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    bytes_moved: int = 0
    bytes_planned: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, amount: int = 1) -> None:
        """Add to one counter."""
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)


class Copier:
    """Copies manifest trees from `source` to `dest`, sharing one thread pool and one set of stats."""

    def __init__(self, source: Transport, dest: Transport, pool: ThreadPoolExecutor, *,
                 mount_from: Sequence[str] = (), stats: Stats | None = None,
                 on_bytes: Callable[[int], None] = lambda n: None) -> None:
        self.source, self.dest, self.pool = source, dest, pool
        self.stats = stats or Stats()
        self.mount_from = list(mount_from)
        if source.repository.host == dest.repository.host and source.repository.name != dest.repository.name:
            self.mount_from.insert(0, source.repository.name)  # same registry: a mount moves no bytes
        self.on_bytes = on_bytes
        self.manifests: dict[str, Manifest] = {}  # source manifests read so far, by digest
        self.present: set[str] = set()  # manifest digests the destination has
        self.failed: dict[str, str] = {}  # digest -> why it could not be copied
        self._planned: list[Manifest] = []  # to push, children before parents
        self._planned_set: set[str] = set()
        self._lock = threading.Lock()

    def fetch(self, reference: str) -> Manifest | None:
        """Read a manifest from the source by tag or digest (cached by digest); None when absent."""
        with self._lock:
            if reference in self.manifests:
                return self.manifests[reference]
        manifest = get_manifest(self.source, reference)
        if manifest is not None:
            with self._lock:
                self.manifests[manifest.digest] = manifest
        return manifest

    def plan(self, digests: Iterable[str]) -> None:
        """Phase 1: find which of these manifest trees the destination lacks, reading them from the source."""
        roots = [d for d in dict.fromkeys(digests) if d not in self.present and d not in self._planned_set]
        for digest, there in zip(roots, self.pool.map(self._dest_has, roots)):
            if there:
                self.present.add(digest)
                self.stats.add("manifests_skipped")
            else:
                self._plan_tree(digest)

    def _dest_has(self, digest: str) -> bool:
        """HEAD the destination for a manifest digest."""
        return head_manifest(self.dest, digest, actions="pull,push") is not None

    def _plan_tree(self, digest: str) -> None:
        """Plan one missing manifest: its missing children first, then itself."""
        try:
            manifest = self.fetch(digest)
            if manifest is None:
                raise RegistryError("GET", f"{self.source.repository}@{digest}", 404,
                                    detail="manifest not found in the source")
            children = [c.digest for c in manifest.children()]
        except AccessDenied:
            raise
        except CopyError as exc:
            self.failed[digest] = str(exc)
            return
        self.plan(children)
        if digest not in self._planned_set:
            self._planned.append(manifest)
            self._planned_set.add(digest)

    def transfer(self) -> None:
        """Phases 2 and 3: copy missing blobs, then push planned manifests children-first."""
        blobs: dict[str, Descriptor] = {}
        for manifest in self._planned:
            for blob in manifest.blobs():
                blobs.setdefault(blob.digest, blob)
        self.stats.add("bytes_planned", sum(b.size for b in blobs.values()))
        results = dict(zip(blobs, self.pool.map(self._copy_blob, blobs.values())))
        for digest, error in results.items():
            if error:
                self.failed[digest] = error
        for manifest in self._planned:
            missing = [d.digest for d in manifest.blobs() + manifest.children() if d.digest in self.failed]
            if missing:
                self.failed[manifest.digest] = f"not pushed: {len(missing)} referenced item(s) failed"
                continue
            try:
                put_manifest(self.dest, manifest.digest, manifest)
            except AccessDenied:
                raise
            except CopyError as exc:
                self.failed[manifest.digest] = str(exc)
                continue
            self.present.add(manifest.digest)
            self.stats.add("manifests_copied")
        self._planned, self._planned_set = [], set()

    def _copy_blob(self, blob: Descriptor) -> str | None:
        """Copy one blob unless the destination has it; return an error message or None."""
        try:
            if blob_exists(self.dest, blob.digest, actions="pull,push"):
                self.stats.add("blobs_skipped")
                return None

            def moved(count: int) -> None:
                self.stats.add("bytes_moved", count)
                self.on_bytes(count)

            outcome = copy_blob_with_retries(self.source, self.dest, blob, mount_from=self.mount_from,
                                             on_bytes=moved)
        except CopyError as exc:
            log.warning("blob %s failed: %s", blob.digest, exc)
            return str(exc)
        self.stats.add("blobs_mounted" if outcome == "mounted" else "blobs_copied")
        return None

    def first_failure(self) -> str | None:
        """Return one failure message, preferring a cause over its "not pushed" consequences."""
        causes = [m for m in self.failed.values() if not m.startswith("not pushed")]
        return next(iter(causes or list(self.failed.values())), None)

"""Copy manifest trees between two repositories: only what the destination lacks, children first.

Three phases, so nothing is ever referenced before it exists (and an interrupted run leaves at most
unreferenced blobs, which the next run skips by HEAD):
1. plan: for each wanted digest the destination lacks, read the manifest from the source; an index
   brings every child. A manifest the destination already has is skipped with its whole tree: the
   registry only accepted it once everything it references was there.
2. blobs: config and layers of every planned image, deduplicated, HEAD-checked on the destination all at
   once (the metadata pool's width), then those missing copied (or mounted): the large ones largest first,
   `concurrency` at a time, as many small ones (up to 1 MiB) alongside on the metadata pool.
3. manifests: PUT by digest, children before parents; a manifest with a failed blob or child is not
   pushed, and neither is anything above it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from chalicelib.registry.blobs import blob_exists, copy_blob_with_retries
from chalicelib.sync.bounds import DEADLINE_REACHED, Deadline, alongside, bounded_map
from chalicelib.registry.errors import AccessDenied, CopyError
from chalicelib.registry.manifests import Descriptor, Manifest, get_manifest, head_manifest, put_manifest
from chalicelib.registry.transport import Transport

log = logging.getLogger(__name__)
MAX_DEPTH = 8  # index levels a tree may nest (index → image is 2; in practice at most 3)
MAX_CHILDREN = 1000  # manifests one index may name (multi-platform indexes name tens)
SMALL_BLOB = 1 << 20  # bytes up to which a blob copy is latency-bound: copied on the metadata pool


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
    """Copies manifest trees from `source` to `dest`, sharing thread pools and one set of stats.

    `pool` runs blob copies; `meta_pool` (default: `pool`) the small manifest requests, which may run
    wider. Once `deadline` has passed, no blob copy or manifest push starts (DEADLINE_REACHED).
    """

    def __init__(self, source: Transport, dest: Transport, pool: ThreadPoolExecutor, *,
                 meta_pool: ThreadPoolExecutor | None = None, deadline: Deadline | None = None,
                 mount_from: Sequence[str] = (), stats: Stats | None = None,
                 on_bytes: Callable[[int], None] = lambda n: None, blob_concurrency: int = 4) -> None:
        self.source, self.dest, self.pool = source, dest, pool
        self.blob_concurrency = blob_concurrency  # large blob copies at once, and as many small ones
        self.meta_pool = meta_pool or pool
        self.deadline = deadline or Deadline()
        self.stats = stats or Stats()
        self.mount_from = list(mount_from)
        if source.repository.host == dest.repository.host and source.repository.name != dest.repository.name:
            self.mount_from.insert(0, source.repository.name)  # same registry: a mount moves no bytes
        self.on_bytes = on_bytes
        self.manifests: dict[str, Manifest] = {}  # source manifests read so far, by digest
        self.present: set[str] = set()  # manifest digests the destination has
        self.pushed: set[str] = set()  # manifest digests this copier pushed
        self.failed: dict[str, str] = {}  # digest -> why it could not be copied
        self._dest_empty = False  # the destination held no tag when the run began: plan() reads, not HEADs (_probe)
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

    def note_present(self, digests: Iterable[str], *, skipped: bool = False) -> None:
        """Record manifests known to be in the destination (a tag on them, a HEAD); `skipped`: count them so."""
        with self._lock:
            new = set(digests) - self.present
            self.present.update(new)
        if skipped and new:
            self.stats.add("manifests_skipped", len(new))

    def plan(self, digests: Iterable[str], *, dest_empty: bool = False) -> None:
        """Phase 1: find which of these manifest trees the destination lacks, reading them from the source.

        `dest_empty`: the destination held no tag when the run began (a first copy), so nearly every HEAD
        would answer 404: each level's manifests are read from the source at once instead (_probe).

        Breadth-first: each level's HEADs, then its GETs, go out in parallel. A tree nested deeper than
        MAX_DEPTH, or with an index naming more than MAX_CHILDREN manifests, is refused whole here, before
        any of its bytes move: its root fails, and what only it references is not planned.
        """
        self._dest_empty = dest_empty
        level = list(dict.fromkeys(digests))
        roots_of: dict[str, set[str]] = {d: {d} for d in level}  # which asked-for roots reach each digest
        refused: dict[str, str] = {}  # root -> why its tree is refused
        found: list[Manifest] = []
        depth = 0
        while level:
            depth += 1
            level = [d for d in level if d not in self.present and d not in self._planned_set and d not in self.failed
                     and not roots_of[d] <= refused.keys()]
            if level and depth > MAX_DEPTH:
                for root in set().union(*(roots_of[d] for d in level)):
                    refused.setdefault(root, f"{self.source.repository}@{root}: manifests nested more than {MAX_DEPTH} "
                                             "deep; refused before copying")
                break
            missing: list[str] = []
            heads, ahead = self._probe(level)
            for digest, there in zip(level, heads):
                if there:
                    self.present.add(digest)
                    self.stats.add("manifests_skipped")
                else:
                    missing.append(digest)
            reads = [ahead[d] for d in missing] if ahead else bounded_map(self.meta_pool, self._read, missing)
            children: list[str] = []
            for digest, read in zip(missing, reads):
                if isinstance(read, AccessDenied):
                    raise read
                if isinstance(read, str):
                    self.failed[digest] = read
                elif digest not in self._planned_set:
                    named = read.children()
                    if len(named) > MAX_CHILDREN:
                        for root in roots_of[digest]:
                            refused.setdefault(root, f"{self.source.repository}@{digest}: an index naming {len(named)} "
                                                     f"manifests (more than {MAX_CHILDREN}); refused before copying")
                        continue
                    self._planned_set.add(digest)
                    found.append(read)
                    for child in named:
                        roots_of.setdefault(child.digest, set()).update(roots_of[digest])
                        children.append(child.digest)
            level = list(dict.fromkeys(children))
        if refused:
            self.failed.update(refused)
            dropped = {m.digest for m in found if roots_of[m.digest] <= refused.keys()}
            self._planned_set -= dropped
            found = [m for m in found if m.digest not in dropped]
        self._planned += found

    def _probe(self, level: list[str]) -> tuple[list[bool], dict[str, Manifest | str | AccessDenied]]:
        """HEAD one level's digests on the destination, or read them when it held no tag (plan(dest_empty=True)).

        An empty destination would answer 404 to nearly every HEAD: its manifests are read from the source at
        once, a round trip and a request fewer each. What an interrupted earlier run pushed by digest is then
        read and pushed again (a few KB each); blobs are still HEADed, so no layer moves twice. A source
        denial is returned, and raised by plan() for a manifest the destination lacks.
        """
        if not self._dest_empty:
            return list(bounded_map(self.meta_pool, self._dest_has, level)), {}
        return [False] * len(level), dict(zip(level, bounded_map(self.meta_pool, self._read_ahead, level)))

    def _read_ahead(self, digest: str) -> Manifest | str | AccessDenied:
        """Read a manifest from the source, returning a denial instead of raising it."""
        try:
            return self._read(digest)
        except AccessDenied as exc:
            return exc

    def _dest_has(self, digest: str) -> bool:
        """HEAD the destination for a manifest digest."""
        return head_manifest(self.dest, digest, actions="pull,push") is not None

    def _read(self, digest: str) -> Manifest | str:
        """Read a manifest the destination lacks from the source; a message when that fails (denial raises)."""
        try:
            manifest = self.fetch(digest)
        except AccessDenied:
            raise
        except CopyError as exc:
            return str(exc)
        return manifest or f"{self.source.repository}@{digest}: manifest not found in the source"

    def transfer(self) -> None:
        """Phases 2 and 3: copy missing blobs, then push planned manifests children-first."""
        blobs: dict[str, Descriptor] = {}
        for manifest in self._planned:
            for blob in manifest.blobs():
                blobs.setdefault(blob.digest, blob)
        self.stats.add("bytes_planned", sum(b.size for b in blobs.values()))
        missing: list[Descriptor] = []
        for blob, there in zip(blobs.values(), bounded_map(self.meta_pool, self._blob_there, blobs.values())):
            if isinstance(there, str):
                self.failed[blob.digest] = there
            elif there:
                self.stats.add("blobs_skipped")
            else:
                missing.append(blob)
        # Small blobs (configs, signature layers) are round trips, not bandwidth: as many of them as blob copies
        # go alongside on the metadata pool, while the large ones take the blob pool, largest first (the
        # longest copy never starts last).
        small = [b for b in missing if b.size <= SMALL_BLOB]
        large = sorted((b for b in missing if b.size > SMALL_BLOB), key=lambda b: -b.size)
        small_done = alongside(lambda: list(bounded_map(self.meta_pool, self._copy_blob, small,
                                                        window=self.blob_concurrency)))
        try:
            large_done = list(bounded_map(self.pool, self._copy_blob, large))
        except BaseException:
            with contextlib.suppress(Exception):  # the first failure is the one to report
                small_done()
            raise
        for blob, error in [*zip(large, large_done), *zip(small, small_done())]:
            if error:
                self.failed[blob.digest] = error
        # Push level by level (images, then indexes of them, ...); one level's manifests go in parallel.
        level = push_levels(self._planned)
        for depth in sorted(set(level.values())):
            batch = [m for m in self._planned if level[m.digest] == depth]
            for manifest, error in zip(batch, bounded_map(self.meta_pool, self._push, batch)):
                if error:
                    self.failed[manifest.digest] = error
                else:
                    self.present.add(manifest.digest)
                    self.pushed.add(manifest.digest)
                    self.stats.add("manifests_copied")
        self._planned, self._planned_set = [], set()

    def _push(self, manifest: Manifest) -> str | None:
        """PUT one manifest by digest unless something it references failed; return an error message or None."""
        missing = [d.digest for d in manifest.blobs() + manifest.children() if d.digest in self.failed]
        if missing:
            return f"not pushed: {len(missing)} referenced item(s) failed"
        if self.deadline.expired():
            return DEADLINE_REACHED
        try:
            put_manifest(self.dest, manifest.digest, manifest)
        except AccessDenied:
            raise
        except CopyError as exc:
            return str(exc)
        return None

    def _blob_there(self, blob: Descriptor) -> bool | str:
        """HEAD the destination for one blob: whether it has it, or an error message."""
        if self.deadline.expired():
            return DEADLINE_REACHED
        try:
            return blob_exists(self.dest, blob.digest, actions="pull,push")
        except CopyError as exc:
            log.warning("blob %s failed: %s", blob.digest, exc)
            return str(exc)

    def _copy_blob(self, blob: Descriptor) -> str | None:
        """Copy one blob the destination lacks; return an error message or None."""
        if self.deadline.expired():
            return DEADLINE_REACHED
        try:
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
        causes = [m for m in self.failed.values() if not m.startswith("not pushed") and m != DEADLINE_REACHED]
        return next(iter(causes or list(self.failed.values())), None)


def push_levels(manifests: Sequence[Manifest]) -> dict[str, int]:
    """Give each manifest its push level: 0 for images, 1 + the highest level of its planned children.

    Iterative (an explicit stack), so no nesting depth can exhaust Python's recursion limit.
    """
    planned = {m.digest: m for m in manifests}
    level: dict[str, int] = {}
    for start in planned:
        stack: list[tuple[str, bool]] = [(start, False)]
        while stack:
            digest, expanded = stack.pop()
            if digest in level:
                continue
            children = [c.digest for c in planned[digest].children() if c.digest in planned and c.digest != digest]
            if expanded:
                level[digest] = 1 + max((level.get(c, 0) for c in children), default=-1)
            else:
                stack.append((digest, True))
                stack += [(c, False) for c in children if c not in level]
    return level

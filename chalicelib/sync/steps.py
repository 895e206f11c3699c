"""The steps of one sync, in order: desired state, diff, copy, tags last; then the signatures (sync.py's shape 1-4).

`sync.run` builds the two ends and the copier, then hands them to SyncSteps; the report is filled in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.sync import desire
from chalicelib.sync.dest_state import DestinationState
from chalicelib.registry import ecr
from chalicelib.sync import endpoints
from chalicelib.sync.bounds import alongside, batches
from chalicelib.sync.copy import Copier
from chalicelib.registry.errors import RegistryError
from chalicelib.sync.signatures import COSIGN_TAG, discover, skipped_targets
from chalicelib.sync.tagging import set_tags
from chalicelib.sync.source_index import SourceIndex
from chalicelib.sync.report import ProgressSink, Report

if TYPE_CHECKING:
    from chalicelib.sync.engine import SyncRequest

TAG_BATCH = 500  # tags planned, copied and set together: memory and the work lost to a deadline stay bounded


class SyncSteps:
    """One run: desired state, diff, copy, tags; then the signatures of what is now in the destination."""

    def __init__(self, request: SyncRequest, env: Mapping[str, str], report: Report, copier: Copier,
                 progress: ProgressSink | None, boto: Any) -> None:
        self.request, self.env, self.report, self.copier, self.boto = request, env, report, copier, boto
        self.phase = progress.phase if progress else (lambda name: None)
        self.index = SourceIndex(copier, copier.meta_pool)
        bulk = boto if request.dest.ecr is not None else None  # ListImages only on a real ECR host
        self.dest = DestinationState(copier, copier.meta_pool, ecr=bulk)
        self._listing: Callable[[], list[str]] | None = None  # the signatures' listing, started early

    def run(self) -> None:
        """The sync's steps, in order; a listing started alongside always ends before the run does."""
        try:
            self._steps()
        finally:
            if self._listing is not None:
                try:
                    self._listing()
                except Exception:  # noqa: S110 - only its result was of use, and the run is over
                    pass

    def _steps(self) -> None:
        """Desired state, diff and copy, then signatures."""
        request, report = self.request, self.report
        filtered = request.aliases and request.tag_filter is not None  # may admit nothing: then create nothing
        if not filtered:
            self._prepare_repository()
        self.phase("resolving")
        asked = [t for t in request.tags if COSIGN_TAG.fullmatch(t)]
        images = [t for t in request.tags if not COSIGN_TAG.fullmatch(t)]
        own_signature = bool(asked) and not images  # --digest is then the signature's own manifest
        desired = desire.desire(
            self.index, self.dest, explicit=images, digest=None if own_signature else request.digest,
            select_all=request.all_tags or (request.tag_filter is not None and not request.aliases),
            aliases=request.aliases, tag_filter=request.tag_filter, budget=request.budget)
        self._record_desired(desired)
        if request.aliases and request.tag_filter is not None and not desired.tags and not asked:
            report.notes.append(f"no tag of {request.digest or 'the asked digests'} passes --tags: nothing to do")
            return
        if filtered:
            self._prepare_repository()
        self._converge(desired.tags, desired.roots, images_phase=True)
        self._signatures(asked, own_signature)
        if report.left_undone:
            report.errors.append(f"deadline of {request.deadline:g}s reached: {len(report.left_undone)} tag(s) "
                                 f"left undone ({', '.join(report.left_undone[:5])}"
                                 f"{', ...' if len(report.left_undone) > 5 else ''}); run again to finish")

    def _prepare_repository(self) -> None:
        """For ECR: create the destination repository when asked, and check whose it is."""
        request = self.request
        if endpoints.uses_ecr(request.dest, self.env):
            self.report.repository_created = ecr.prepare_repository(
                self.boto, request.dest.name, request.source, self.env, create=request.create_repository)

    def _record_desired(self, desired: desire.Desired) -> None:
        """Put what the plan found into the report: digests, aliases, missing and unchecked tags."""
        report, request = self.report, self.request
        report.digests.update(desired.tags)
        report.aliases = desired.aliases
        report.errors += [f"tag {t!r} not found in {request.source}" for t in desired.missing]
        if self.index.truncated:
            report.errors.append(self.index.truncated)
        report.tags_unchecked = desired.unchecked
        if desired.unchecked:
            message = (f"{len(desired.unchecked)} tag(s) not checked: the budget of {request.budget} source "
                       "requests was spent (see tags.unchecked; raise --budget / GHCR2ECR_SYNC_BUDGET)")
            (report.warnings if request.aliases and not request.all_tags else report.errors).append(message)

    def _converge(self, wanted: Mapping[str, str], roots: Sequence[str], images_phase: bool = False) -> list[str]:
        """Diff against the destination, copy what it lacks, set the tags last; return the tags now right."""
        copier, report = self.copier, self.report
        self.phase("planning")
        updates, unchanged = desire.diff(wanted, self.dest)
        report.tags_unchanged += unchanged
        copier.note_present({wanted[t] for t in unchanged}, skipped=True)  # a tag only ever names complete content
        untagged = [d for d in roots if d not in set(updates.values())]
        pending = list(updates.items())
        done = list(unchanged)
        last = max(0, (len(pending) - 1) // TAG_BATCH)
        for number, batch in enumerate(batches(pending, TAG_BATCH) if pending else [[]]):
            if copier.deadline.expired():
                report.left_undone += [t for t, _ in pending[number * TAG_BATCH:]]
                break
            self.phase("planning")
            copier.plan([*(untagged if number == 0 else []), *dict.fromkeys(d for _, d in batch)],
                        dest_empty=self.dest.empty)
            self.phase("copying")
            copier.transfer()
            cause = copier.first_failure()
            if cause and cause not in report.errors:
                report.errors.append(cause)
            if images_phase and number == last:
                self._start_listing(changed=bool(pending or copier.pushed))
            self.phase("tagging")
            ready = {t: d for t, d in batch if d in copier.present}  # never a tag on incomplete content
            done += self._set(ready)
            if copier.deadline.expired():
                report.left_undone += [t for t, _ in batch if t not in ready]
        return done

    def _start_listing(self, changed: bool) -> None:
        """Start the signatures' listing of the source's tags while tags are set (the images are in place now).

        A listing made earlier in the run is reused unless this run pushes or sets something: then a
        signature pushed meanwhile must be seen.
        """
        if not self.request.signatures or (self.index.listings and not changed):
            return
        self._listing = alongside(self.index.relist if self.index.listings else self.index.listed)

    def _set(self, ready: Mapping[str, str]) -> list[str]:
        """Set tags whose content is complete; record each outcome; return the tags now right."""
        report, done = self.report, []
        for tag, outcome, message in set_tags(self.copier, self.copier.meta_pool, ready, self.dest.tags):
            {"set": report.tags_set, "unchanged": report.tags_unchanged, "conflict": report.conflicts,
             "error": report.errors}[outcome].append(message or tag)
            if outcome in ("set", "unchanged"):
                self.dest.note(tag, ready[tag])
                done.append(tag)
        return done

    def _signatures(self, asked: Sequence[str], own_signature: bool) -> None:
        """Cosign tags: those of digests now in the destination, and those asked for by name."""
        request, report, copier = self.request, self.report, self.copier
        if copier.deadline.expired():
            return
        found: dict[str, str] = {}
        signed = {d for d in [*report.digests.values(), *copier.manifests, *copier.pushed,
                              *([request.digest] if request.digest and not own_signature else [])]
                  if d in copier.present}  # a signature follows only an image that is in the destination
        if request.signatures and signed:
            try:
                listing, self._listing = self._listing, None
                listed = listing() if listing else self.index.listed()
                tags = discover(listed, signed, {*report.digests, *asked})
                found = {t: d for t, d in self.index.resolve(tags).items() if d}
            except RegistryError as exc:  # the images are there; the run reports that signatures could not be checked
                report.errors.append(f"listing tags to find signatures: {exc}")
        report.tags_skipped = skipped_targets(copier, copier.meta_pool, asked, signatures=request.signatures)
        kept = [t for t in asked if t not in report.tags_skipped]
        for tag, digest in self.index.fetch(kept).items():
            if digest is None:
                report.errors.append(f"tag {tag!r} not found in {request.source}")
            else:
                found[tag] = digest
        if not found:
            return
        report.digests.update(found)
        roots = [*found.values(), *([request.digest] if own_signature and request.digest and kept else [])]
        done = self._converge(found, roots)
        report.signatures += [t for t in found if t in done and t not in asked]

"""Plan and run one sync (source repository → destination repository); the report.

Python API (what `ghcr2ecr sync`, the buildspec and the local demo use):

    from chalicelib import sync
    request = sync.SyncRequest.build(
        "ghcr.io/octo/app",                       # or "http://127.0.0.1:5000/octo/app" (loopback only)
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ghcr/octo/app",
        tags=["v1"], digest=None, all_tags=False, tag_globs=None,   # tag_globs: "v*,latest,!*-rc*"
        aliases=False,                            # also set the source's other tags of the root digests
        signatures=True, create_repository=True, concurrency=4,
        deadline=None, budget=10_000,             # seconds for the whole sync; source HEADs for listed tags
    )                                             # raises ValueError (InvalidReference) on bad input
    report = sync.run(request)                    # never raises for registry trouble: see report.errors
    report.ok, report.exit_code, report.to_dict() # to_dict() is the --report JSON
    report.cause()                                # the one-line cause the CLI prints when not ok

`run` keyword arguments, all optional: `env` (mapping read instead of os.environ), `progress` (a
ProgressSink, e.g. sync_cli.StderrProgress()), `retry` (RetryPolicy), `sleep`, `ecr_client` (a boto3 ECR
client to use), `mount_from` (other repositories of the destination registry to try mounting blobs
from), `http_transports` ({"source"|"destination": httpx transport}, for tests).

Credentials come from `env` (default `os.environ`), never from the request:
- source: GHCR2ECR_SOURCE_TOKEN (installation token), then anonymous, then GHCR2ECR_SOURCE_FALLBACK_TOKEN
  (plain token or JSON {"username", "accessToken"}; username default GHCR2ECR_SOURCE_USERNAME or
  x-access-token). A denied answer moves to the next one.
- destination: ECR hosts (or any host with GHCR2ECR_DEST_ECR=true, using boto3 and AWS_ENDPOINT_URL) use
  GetAuthorizationToken and CreateRepository; other hosts GHCR2ECR_DEST_USERNAME/PASSWORD or anonymous.

The run's shape:
1. desired state (sync_plan.desire): which tag should point at which digest — explicit tags, aliases,
   the --all-tags / --tags selection — read from one SourceIndex (list once, HEAD lazily);
2. diff against the destination (DestinationState: ECR ListImages in bulk, else tags/list + HEAD): a tag
   already right is left alone and its content is known to be there;
3. the copier moves what the plan lacks (trees the destination lacks, missing blobs, manifests
   children-first), in batches of tags, and the tags are set last, only on content now complete, in
   waves that never race (registry/tagging.py);
4. cosign tags follow the digests they sign once those are in the destination (registry/signatures.py):
   the source's tags are listed (again, when this run listed them and then pushed or set anything) while
   the tags are set; a cosign tag asked for by name (`--tag sha256-<hex>.sig`, its own event) is set only
   when `sha256:<hex>` is in the destination, else listed in `tags_skipped`, and a `--digest` given with
   only such tags (the signature's own manifest) is then not copied.

With --aliases and --tags, a run whose filter admits no tag (and no --tag) copies nothing, creates no
repository and succeeds, saying so in `notes`. Past the deadline no new blob, manifest or batch starts;
tags whose content was not completed are listed in `left_undone` and the run fails.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from chalicelib import sync_plan
from chalicelib.dest_state import DestinationState
from chalicelib.globs import TagFilter, parse_tag_globs
from chalicelib.registry import ecr, endpoints
from chalicelib.registry.auth import secret_values
from chalicelib.registry.bounds import Deadline, alongside, batches
from chalicelib.registry.copy import Copier, CopyError, Stats
from chalicelib.registry.errors import RegistryError, describe_unexpected
from chalicelib.registry.reference import Repository, check_digest, check_tag, parse_repository
from chalicelib.registry.signatures import COSIGN_TAG, discover, skipped_targets
from chalicelib.registry.tagging import set_tags
from chalicelib.registry.transport import RetryPolicy
from chalicelib.source_index import SourceIndex
from chalicelib.sync_report import ProgressSink, Report

__all__ = ["ProgressSink", "Report", "Stats", "SyncRequest", "run"]  # sync.Report, sync.Stats: the API
TAG_BATCH = 500  # tags planned, copied and set together: memory and the work lost to a deadline stay bounded


def metadata_concurrency(concurrency: int) -> int:
    """Return how many small manifest requests run at once: wider than blobs, which are bandwidth-bound."""
    return min(64, max(16, 4 * concurrency))


@dataclass(frozen=True)
class SyncRequest:
    """What to copy, from where to where (no credentials: those come from the environment)."""

    source: Repository
    dest: Repository
    tags: tuple[str, ...] = ()
    digest: str | None = None
    all_tags: bool = False
    tag_filter: TagFilter | None = None
    signatures: bool = True
    create_repository: bool = True
    concurrency: int = 4
    aliases: bool = False
    deadline: float | None = None
    budget: int = sync_plan.DEFAULT_BUDGET

    @classmethod
    def build(cls, source: str, dest: str, *, tags: Sequence[str] = (), digest: str | None = None,
              all_tags: bool = False, tag_globs: str | None = None, signatures: bool = True,
              create_repository: bool = True, concurrency: int = 4, aliases: bool = False,
              deadline: float | None = None, budget: int = sync_plan.DEFAULT_BUDGET) -> SyncRequest:
        """Validate user input into a request; raise ValueError saying what is wrong.

        Empty tag strings are dropped (`--tag "$TAG"` with an empty variable asks for no tag).
        """
        tags = [t for t in tags if t]
        if not (tags or digest or all_tags or tag_globs):
            raise ValueError("nothing to copy: give --tag, --digest, --all-tags or --tags")
        if aliases and not (tags or digest):
            raise ValueError("--aliases needs --digest or --tag: it follows their digests")
        if not 1 <= concurrency <= 64:
            raise ValueError("--concurrency must be between 1 and 64")
        if deadline is not None and not 0 < deadline <= 7 * 24 * 3600:
            raise ValueError("--deadline must be a number of seconds between 1 and 604800")
        if not 0 <= budget <= 10_000_000:
            raise ValueError("--budget must be between 0 and 10000000")
        return cls(source=parse_repository(source), dest=parse_repository(dest),
                   tags=tuple(dict.fromkeys(check_tag(t) for t in tags)),
                   digest=check_digest(digest) if digest else None, all_tags=all_tags,
                   tag_filter=parse_tag_globs(tag_globs) if tag_globs is not None else None,
                   signatures=signatures, create_repository=create_repository, concurrency=concurrency,
                   aliases=aliases, deadline=deadline, budget=budget)


def run(request: SyncRequest, *, env: Mapping[str, str] | None = None, progress: ProgressSink | None = None,
        retry: RetryPolicy | None = None, sleep: Any = None, ecr_client: Any = None,
        mount_from: Sequence[str] = (), http_transports: Mapping[str, httpx.BaseTransport] | None = None) -> Report:
    """Run one sync and return its report; registry and AWS failures are recorded, not raised.

    `http_transports` ({"source": ..., "destination": ...}) replaces httpx's network transport (tests).
    """
    transports = http_transports or {}
    retry, sleep = retry or RetryPolicy(), sleep or time.sleep
    env = os.environ if env is None else env
    started = time.monotonic()
    deadline = Deadline(request.deadline)
    report = Report(source=str(request.source), destination=str(request.dest))
    boto = endpoints.ecr_client_factory(request.dest, ecr_client)
    width = metadata_concurrency(request.concurrency)
    try:
        source = endpoints.source_transport(request.source, env, endpoints.http_client(
            width, transports.get("source")), retry, sleep)
    except ValueError as exc:  # a malformed GHCR2ECR_SOURCE_FALLBACK_TOKEN: say so, never default it
        report.errors.append(str(exc))
        return report
    dest = endpoints.dest_transport(request.dest, env, endpoints.http_client(
        width, transports.get("destination")), retry, boto, sleep)
    if progress:
        progress.start(report.stats)
    try:
        with ThreadPoolExecutor(max_workers=request.concurrency, thread_name_prefix="ghcr2ecr-blob") as pool, \
                ThreadPoolExecutor(max_workers=width, thread_name_prefix="ghcr2ecr-meta") as meta_pool:
            copier = Copier(source, dest, pool, meta_pool=meta_pool, deadline=deadline, stats=report.stats,
                            mount_from=mount_from)
            _Sync(request, env, report, copier, progress, boto).run()
    except (*CopyError, ValueError) as exc:
        report.errors.append(str(exc))
    except Exception as exc:  # boto3 errors from CreateRepository/GetAuthorizationToken, or a bug: never a traceback
        if type(exc).__module__.split(".")[0] in ("botocore", "boto3"):
            report.errors.append(f"AWS call failed for {request.dest}: {exc}")
        else:
            report.errors.append(describe_unexpected(exc, secret_values(env)))
    finally:
        report.credentials_tried = source.auth.tried()
        report.warnings += source.warnings + dest.warnings
        report.duration_seconds = time.monotonic() - started
        if progress:
            progress.stop()
        source.close()
        dest.close()
    return report


class _Sync:
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
        desired = sync_plan.desire(
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

    def _record_desired(self, desired: sync_plan.Desired) -> None:
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
        updates, unchanged = sync_plan.diff(wanted, self.dest)
        report.tags_unchanged += unchanged
        known = {wanted[t] for t in unchanged} - copier.present  # a registry holds a tag only on complete content
        copier.present.update(known)
        copier.stats.add("manifests_skipped", len(known))
        untagged = [d for d in roots if d not in set(updates.values())]
        pending = list(updates.items())
        done = list(unchanged)
        last = max(0, (len(pending) - 1) // TAG_BATCH)
        for number, batch in enumerate(batches(pending, TAG_BATCH) if pending else [[]]):
            if copier.deadline.expired():
                report.left_undone += [t for t, _ in pending[number * TAG_BATCH:]]
                break
            self.phase("planning")
            copier.dest_empty = self.dest.empty  # a first copy: nearly every manifest HEAD would answer 404
            copier.plan([*(untagged if number == 0 else []), *dict.fromkeys(d for _, d in batch)])
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

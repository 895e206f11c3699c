"""Plan and run one sync (source repository → destination repository); the report.

Python API (what `ghcr2ecr sync`, the buildspec and the local demo use):

    from chalicelib import sync
    request = sync.SyncRequest.build(
        "ghcr.io/octo/app",                       # or "http://127.0.0.1:5000/octo/app" (loopback only)
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ghcr/octo/app",
        tags=["v1"], digest=None, all_tags=False, tag_globs=None,   # tag_globs: "v*,latest,!*-rc*"
        signatures=True, create_repository=True, concurrency=4,
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

Order: tags resolved against the source now → manifest trees planned → missing blobs copied → manifests
pushed children-first → ECR-safe tag updates last (a tag already on the digest is left alone; one held
elsewhere by an immutable repository is a conflict while the other tags still complete).

Signatures: cosign tags are looked up for the digests this run reads (the tagged manifests and the
children of indexes it copies); children of an index already in the destination are not re-read, so a
signature pushed later on a child alone is found only with its index's next copy. With --all-tags/--tags,
cosign-shaped tags are never selected by the globs themselves: they follow their signed digest.
A cosign-shaped tag asked for by name (`--tag sha256-<hex>.sig`: a cosign push is a registry_package event
of its own) is set only when `sha256:<hex>` is copied in this run or already in the destination (HEAD);
otherwise it is skipped without error and listed in `tags_skipped` ("signed image not mirrored"), and a
`--digest` given with only such tags (the signature's own manifest) is not copied: a signature of an image
filtered out creates nothing. With --no-signatures such a tag is skipped the same way.
That check can run before a concurrent build of the image has pushed it, so after setting its tags a run
lists the source's tags once more for the digests it pushed or tagged, and copies and sets the cosign tags
that appeared meanwhile: a signature's own build starts only once the signature exists, so one of the two
builds sets it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from chalicelib.globs import TagFilter, parse_tag_globs
from chalicelib.registry import ecr, endpoints, signatures
from chalicelib.registry.copy import Copier, CopyError, Stats
from chalicelib.registry.auth import secret_values
from chalicelib.registry.errors import RegistryError, describe_unexpected
from chalicelib.registry.manifests import list_tags
from chalicelib.registry.signatures import COSIGN_TAG
from chalicelib.registry.reference import Repository, check_digest, check_tag, parse_repository
from chalicelib.registry.tagging import settled_tags, tag_outcome
from chalicelib.registry.transport import RetryPolicy
from chalicelib.sync_report import ProgressSink, Report

__all__ = ["ProgressSink", "Report", "Stats", "SyncRequest", "run"]  # sync.Report, sync.Stats: the API


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

    @classmethod
    def build(cls, source: str, dest: str, *, tags: Sequence[str] = (), digest: str | None = None,
              all_tags: bool = False, tag_globs: str | None = None, signatures: bool = True,
              create_repository: bool = True, concurrency: int = 4) -> SyncRequest:
        """Validate user input into a request; raise ValueError saying what is wrong.

        Empty tag strings are dropped (`--tag "$TAG"` with an empty variable asks for no tag).
        """
        tags = [t for t in tags if t]
        if not (tags or digest or all_tags or tag_globs):
            raise ValueError("nothing to copy: give --tag, --digest, --all-tags or --tags")
        if not 1 <= concurrency <= 64:
            raise ValueError("--concurrency must be between 1 and 64")
        return cls(source=parse_repository(source), dest=parse_repository(dest),
                   tags=tuple(dict.fromkeys(check_tag(t) for t in tags)),
                   digest=check_digest(digest) if digest else None, all_tags=all_tags,
                   tag_filter=parse_tag_globs(tag_globs) if tag_globs is not None else None,
                   signatures=signatures, create_repository=create_repository, concurrency=concurrency)


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
    report = Report(source=str(request.source), destination=str(request.dest))
    boto = endpoints.ecr_client_factory(request.dest, ecr_client)
    try:
        source = endpoints.source_transport(request.source, env, endpoints.http_client(
            request.concurrency, transports.get("source")), retry, sleep)
    except ValueError as exc:  # a malformed GHCR2ECR_SOURCE_FALLBACK_TOKEN: say so, never default it
        report.errors.append(str(exc))
        return report
    dest = endpoints.dest_transport(request.dest, env, endpoints.http_client(
        request.concurrency, transports.get("destination")), retry, boto, sleep)
    if progress:
        progress.start(report.stats)
    try:
        with ThreadPoolExecutor(max_workers=request.concurrency, thread_name_prefix="ghcr2ecr") as pool:
            copier = Copier(source, dest, pool, stats=report.stats, mount_from=mount_from)
            _run(request, env, report, copier, pool, progress, boto)
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


def _run(request: SyncRequest, env: Mapping[str, str], report: Report, copier: Copier, pool: ThreadPoolExecutor,
         progress: ProgressSink | None, boto: Any) -> None:
    """The sync's steps, in order."""
    phase = progress.phase if progress else (lambda name: None)
    if endpoints.uses_ecr(request.dest, env):
        report.repository_created = ecr.prepare_repository(boto, request.dest.name, request.source, env,
                                                           create=request.create_repository)
    # 1. What is asked: tags resolved against the source now (a moved tag follows), and/or a digest.
    phase("resolving")
    source_tags: list[str] | None = None
    wanted = [t for t in request.tags if not COSIGN_TAG.fullmatch(t)]
    asked_signatures = [t for t in request.tags if COSIGN_TAG.fullmatch(t)]
    if request.all_tags or request.tag_filter is not None:
        source_tags = _list_source_tags(copier)
        chosen = [t for t in source_tags if not COSIGN_TAG.fullmatch(t)]
        if request.tag_filter is not None:
            chosen = [t for t in chosen if request.tag_filter.matches(t)]
        wanted += [t for t in chosen if t not in wanted]
    settled: list[str] = []
    roots = _add_tags(wanted, copier, pool, report, settled)
    # 2. Cosign tags asked for by name only for an image copied now or already there; a skipped one's
    # --digest is that signature's own manifest, skipped with it.
    phase("planning")
    known = {*roots, *copier.manifests, *copier.present, *([request.digest] if request.digest else [])}
    report.tags_skipped = signatures.skipped_targets(copier, pool, asked_signatures, signatures=request.signatures,
                                                    known=known)
    if request.digest and not (request.tags and set(request.tags) <= set(report.tags_skipped)):
        if copier.fetch(request.digest) is None:
            report.errors.append(f"{request.source}@{request.digest} not found in the source")
        else:
            roots.insert(0, request.digest)
            copier.plan([request.digest])
    kept = [t for t in asked_signatures if t not in report.tags_skipped]
    roots += _add_tags(kept, copier, pool, report, settled)
    wanted += kept
    # 3. Cosign signature tags of every digest we know (roots and the children we read).
    if request.signatures:
        wanted += _add_signatures(set(roots) | set(copier.manifests), source_tags, wanted, copier, pool, report,
                                  settled)
    _copy_and_tag(wanted, copier, pool, report, settled, phase)
    # 4. A signature pushed during this run may have had its own build find the image not yet here (skipped):
    # one more listing of the source's tags for the digests this run pushed or tagged; copy and set what is new.
    done = copier.pushed | {report.digests[t] for t in report.tags_set}
    if request.signatures and done:
        late = _add_signatures(done, None, [*wanted, *report.digests], copier, pool, report, settled)
        if late:
            _copy_and_tag(late, copier, pool, report, settled, phase)


def _add_signatures(digests: set[str], source_tags: list[str] | None, exclude: Sequence[str], copier: Copier,
                    pool: ThreadPoolExecutor, report: Report, settled: list[str]) -> list[str]:
    """Find the source's cosign tags of these digests (not in `exclude`), plan them; return those resolved."""
    try:
        found = signatures.discover(copier, digests, source_tags, [*exclude, *report.tags_skipped])
    except RegistryError as exc:  # the images still copy; the run reports that signatures could not be checked
        report.errors.append(f"listing tags to find signatures: {exc}")
        return []
    _add_tags(found, copier, pool, report, settled)
    resolved = [t for t in found if t in report.digests]
    report.signatures += resolved
    return resolved


def _copy_and_tag(wanted: Sequence[str], copier: Copier, pool: ThreadPoolExecutor, report: Report,
                  settled: list[str], phase: Any) -> None:
    """Copy what is planned, then set the wanted tags whose content is complete in the destination (tags last)."""
    phase("copying")
    copier.transfer()
    cause = copier.first_failure() or "copy failed"
    if copier.failed and cause not in report.errors:
        report.errors.append(cause)
    phase("tagging")
    ready = [(t, report.digests[t]) for t in wanted
             if t in report.digests and t not in settled and report.digests[t] not in copier.failed]
    for (tag, _), (outcome, message) in zip(ready, pool.map(lambda item: tag_outcome(copier, *item), ready)):
        {"set": report.tags_set, "unchanged": report.tags_unchanged, "conflict": report.conflicts,
         "error": report.errors}[outcome].append(message or tag)


def _add_tags(tags: Sequence[str], copier: Copier, pool: ThreadPoolExecutor, report: Report,
              settled: list[str]) -> list[str]:
    """Resolve tags, note those the destination already has right (into `settled`), plan their trees."""
    roots = _resolve(tags, copier, pool, report)
    done = settled_tags(copier, pool, tags, report.digests)
    settled += done
    report.tags_unchanged += done
    copier.plan(roots)
    return roots


def _list_source_tags(copier: Copier) -> list[str]:
    """List the source's tags; a repository the source does not know is an error."""
    tags = list_tags(copier.source)
    if tags is None:
        raise RegistryError("GET", f"{copier.source.repository}/tags/list", 404,
                            detail="repository not found in the source")
    return tags


def _resolve(tags: Sequence[str], copier: Copier, pool: ThreadPoolExecutor, report: Report) -> list[str]:
    """Resolve tags to digests against the source (in parallel); record missing ones as errors."""
    roots: list[str] = []
    for tag, manifest in zip(tags, pool.map(copier.fetch, tags)):
        if manifest is None:
            report.errors.append(f"tag {tag!r} not found in {copier.source.repository}")
            continue
        report.digests[tag] = manifest.digest
        roots.append(manifest.digest)
    return roots

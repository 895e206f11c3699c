"""Plan and run one sync (source repository → destination repository); the report.

Python API (what `ghcr2ecr sync`, the buildspec and the local demo use):

    from chalicelib.sync import engine as sync
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

The run's shape (chalicelib/sync/steps.py):
1. desired state (desire.desire): which tag should point at which digest — explicit tags, aliases,
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
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from chalicelib.sync import desire
from chalicelib.globs import TagFilter, parse_tag_globs
from chalicelib.sync import endpoints
from chalicelib.registry.auth import secret_values
from chalicelib.sync.bounds import Deadline
from chalicelib.sync.copy import Copier, Stats
from chalicelib.registry.errors import CopyError, describe_unexpected
from chalicelib.registry.reference import Repository, check_digest, check_tag, parse_repository
from chalicelib.registry.transport import RetryPolicy
from chalicelib.sync.report import ProgressSink, Report
from chalicelib.sync.steps import SyncSteps

__all__ = ["ProgressSink", "Report", "Stats", "SyncRequest", "run"]  # sync.Report, sync.Stats: the API


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
    budget: int = desire.DEFAULT_BUDGET

    @classmethod
    def build(cls, source: str, dest: str, *, tags: Sequence[str] = (), digest: str | None = None,
              all_tags: bool = False, tag_globs: str | None = None, signatures: bool = True,
              create_repository: bool = True, concurrency: int = 4, aliases: bool = False,
              deadline: float | None = None, budget: int = desire.DEFAULT_BUDGET) -> SyncRequest:
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
                            mount_from=mount_from, blob_concurrency=request.concurrency)
            SyncSteps(request, env, report, copier, progress, boto).run()
    except (CopyError, ValueError) as exc:
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

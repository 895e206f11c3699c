"""`ghcr2ecr run-job`: the build's one command. One `sync.run` per package of GHCR2ECR_JOB, in turn, one report.

The job (chalicelib/build/job.py) says what to sync; credentials come from the environment as for
`ghcr2ecr sync`. For a pushed digest each package runs as `ghcr2ecr sync SOURCE DEST --digest D --aliases
--tags GHCR2ECR_TAGS`, with `--tag T` (the event's tag) only when the filter admits it; for every tag as
`--all-tags --tags GHCR2ECR_TAGS`. No sync starts after the job's deadline (the installation token's hour) or
the build's own timeout (GHCR2ECR_BUILD_TIMEOUT_MINUTES, less a margin), and each sync gets what is left as its
`--deadline`. Packages not started are reported `not_started`; the next reconcile syncs them, and a backfilled
one that exists gets its ECR repository (with its records) at once, so that reconcile can find it.

A backfill (a repository's package looked up under the repository's name), or an operator's reconcile of a
named package, first lists the source's tags once: a source without such a package, or none readable, is
skipped without error and creates no ECR repository. An event whose filter admits none of its digest's tags
sets nothing and creates nothing (the engine's `--aliases --tags`). Both exit 0 and say so in the report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.build.job import VARIABLE, BuildJob, InvalidBuildJob, Target

PREFIX = "ghcr2ecr run-job"


def main(args: argparse.Namespace) -> int:
    """Run the build's job; 0 when every package synced or was skipped on purpose, 1 otherwise, 2 on bad input."""
    from chalicelib.sync.cli import LineFormat, _logging_to_stderr

    env = os.environ
    try:
        job = BuildJob.from_json(env.get(VARIABLE, ""))
    except InvalidBuildJob as exc:
        print(f"{PREFIX}: {exc}", file=sys.stderr)
        return 2
    fields = {k: (str(v) if v is not None else None) for k, v in job.summary.items()}
    lines = LineFormat(bool(env.get("CODEBUILD_BUILD_ID")) or env.get("GHCR2ECR_LOG_FORMAT") == "json",
                       {"delivery": job.correlation_id, "installation": str(job.installation_id),
                        "package": fields["package"], "digest": fields["digest"], "tag": fields["tag"]})
    with _logging_to_stderr(args.quiet, lines):
        results = run(job, env)
    report = job_report(job, results)
    if args.report:
        try:
            with open(args.report, "w", encoding="utf-8") as handle:
                json.dump(report, handle, indent=2)
                handle.write("\n")
        except OSError as exc:
            print(lines.render(f"cannot write the report to {args.report}: {exc.strerror}", "error"), file=sys.stderr)
            return 1
    for result in results:
        level = "error" if result["status"] == "failed" else "info"
        print(lines.render(f"{result['package']}: {result['status']}: {result['reason']}", level), file=sys.stderr)
    return 0 if report["ok"] else 1


def run(job: BuildJob, env: Mapping[str, str], clock: Callable[[], float] = time.time,
        **sync_options: Any) -> list[dict[str, Any]]:
    """Sync each target in turn; return one result per target (status synced, skipped, failed, not_started)."""
    stop_at = _stop_at(job, env, clock())
    results = []
    clients: dict[str | None, Any] = {}  # region -> the one boto3 ECR client of this job
    for target in job.targets:
        target_env = {**env, **_target_env(job, target)}
        if clock() >= stop_at - RECORD_MARGIN:
            results.append(_not_started(job, target, target_env, sync_options.get("ecr_client")))
            continue
        options = sync_options if "ecr_client" in sync_options else \
            {**sync_options, "ecr_client": _shared_ecr_client(target, target_env, clients)}
        results.append(_sync_target(job, target, target_env, clock, stop_at, **options))
    return results


def _shared_ecr_client(target: Target, env: Mapping[str, str], clients: dict[str | None, Any]) -> Any:
    """Return the job's ECR client for this target's region (made once: about 0.1 s each, and its
    GetAuthorizationToken answer is reused by every sync that shares it), or None off the ECR path."""
    from chalicelib.registry import ecr
    from chalicelib.sync import endpoints
    from chalicelib.registry.reference import parse_repository

    try:
        dest = parse_repository(target.dest)
    except ValueError:
        return None  # the sync itself reports the bad destination
    if not endpoints.uses_ecr(dest, env):
        return None
    region = dest.ecr[1] if dest.ecr else None
    if region not in clients:
        try:
            clients[region] = ecr.ecr_client(region)
        except Exception:  # botocore's NoRegionError, say: each sync then makes its own and reports why it fails
            return None
    return clients[region]


RECORD_MARGIN = 30.0  # seconds kept, before the stop, to record the packages not started


def _stop_at(job: BuildJob, env: Mapping[str, str], now: float) -> float:
    """Return when no sync may run any more: the token's hour, or the build's own timeout, whichever is first."""
    from chalicelib.sync.cli import default_deadline

    ends = [job.deadline] if job.deadline else []
    try:
        budget = default_deadline(env, None)  # the build's timeout less a margin (None outside a build)
    except ValueError:
        budget = None
    if budget is not None:
        ends.append(now + budget)
    return min(ends) if ends else float("inf")


def _not_started(job: BuildJob, target: Target, env: Mapping[str, str], ecr_client: Any) -> dict[str, Any]:
    """Report a package left for later; a backfilled one that exists gets its ECR repository, so reconcile finds it."""
    reason = "not started: the build's time (or the installation token's hour) is nearly over; the next reconcile "
    if job.origin not in ("backfill", "operator"):
        return package_result(target, "not_started", reason + "syncs this package")
    from chalicelib.registry import ecr
    from chalicelib.sync import endpoints
    from chalicelib.registry.reference import parse_repository

    dest = parse_repository(target.dest)
    if not (job.create_repository and endpoints.uses_ecr(dest, env) and _source_has_tags(target, env)):
        return package_result(target, "not_started", reason + "cannot find it: run ghcr2ecr reconcile --owner "
                       f"{job.owner} --package {target.package.split('/', 1)[1]}")
    try:
        ecr.prepare_repository(endpoints.ecr_client_factory(dest, ecr_client), dest.name,
                               parse_repository(target.source), env, create=True)
    except Exception as exc:  # noqa: BLE001 - an AWS error: say which, never a traceback
        return package_result(target, "not_started", reason + f"cannot find it ({type(exc).__name__} recording it)")
    return package_result(target, "not_started", reason + "syncs it (its ECR repository is created and records it)")


def _target_env(job: BuildJob, target: Target) -> dict[str, str]:
    """Return what the engine records on the ECR repository it creates (registry/ecr.py)."""
    extra = {"GHCR2ECR_OWNER_ID": str(target.owner_id), "GHCR2ECR_INSTALLATION_ID": str(job.installation_id)}
    if target.repository:
        extra["GHCR2ECR_LINKED_REPOSITORY"] = target.repository
    return extra


def _sync_target(job: BuildJob, target: Target, env: Mapping[str, str], clock: Callable[[], float],
                 stop_at: float, **sync_options: Any) -> dict[str, Any]:
    from chalicelib.sync import engine as sync
    from chalicelib.globs import parse_tag_globs
    from chalicelib.sync.signatures import COSIGN_TAG

    selection = job.selection
    options: dict[str, Any] = {"signatures": target.signatures, "create_repository": job.create_repository}
    if selection.all_tags:
        if job.origin in ("backfill", "operator") and not _source_has_tags(target, env):
            return package_result(target, "skipped", f"no package {target.source} readable (a repository's package is "
                           "looked up under the repository's name)")
        options.update(all_tags=True, tag_globs=target.tags)
    else:
        tag = selection.tag or ""
        signature = bool(COSIGN_TAG.fullmatch(tag))
        admits = parse_tag_globs(target.tags).matches if target.tags else (lambda t: True)
        named = [tag] if signature or admits(tag) else []
        options.update(tags=named, digest=selection.digest)
        if not signature:
            # The engine sets the digest's other tags the filter admits; when it admits none it copies nothing,
            # creates no repository and succeeds (chalicelib/sync/engine.py).
            options.update(aliases=True, tag_globs=target.tags)
    if stop_at != float("inf"):
        options["deadline"] = max(stop_at - clock(), 1.0)  # seconds left of the token's hour and the build
    try:
        request = sync.SyncRequest.build(target.source, target.dest, **options)
    except ValueError as exc:
        return package_result(target, "failed", str(exc))
    report = sync.run(request, env=env, **sync_options)
    filtered = "" if selection.all_tags or options.get("tags") else \
        f"GHCR2ECR_TAGS={target.tags} does not admit the event's tag {selection.tag}; its other tags: "
    if report.ok:
        return package_result(target, "synced", f"{filtered}{len(report.tags_set)} tag(s) set, "
                       f"{len(report.tags_unchanged)} unchanged", report.to_dict())
    return package_result(target, "failed", report.cause(), report.to_dict())


def _source_has_tags(target: Target, env: Mapping[str, str]) -> bool:
    """List the source's tags once: True when it has one (or the listing fails: let the sync say why)."""
    from chalicelib.sync import endpoints
    from chalicelib.registry.errors import AccessDenied, RegistryError
    from chalicelib.registry.manifests import list_tags
    from chalicelib.registry.reference import parse_repository
    from chalicelib.sync.signatures import COSIGN_TAG
    from chalicelib.registry.transport import RetryPolicy

    try:
        source = endpoints.source_transport(parse_repository(target.source), env, endpoints.http_client(1),
                                            RetryPolicy())
    except ValueError:
        return True
    try:
        tags = list_tags(source)
    except AccessDenied:
        # GHCR answers `denied` for a private package and for a name that does not exist (UNVERIFIED which):
        # with every credential tried, there is nothing this build can read.
        return False
    except RegistryError:
        return True
    finally:
        source.close()
    return bool(tags) and any(not COSIGN_TAG.fullmatch(t) for t in tags or ())


def job_report(job: BuildJob, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Return run-job's `--report` JSON: ok, the job's summary, a result per package (contract.FinishedBuild)."""
    return {"ok": all(r["status"] != "failed" for r in results), "job": job.summary, "packages": results}


def package_result(target: Target, status: str, reason: str, report: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return one package's result: names, status, one-line reason, and its sync report."""
    return {"package": target.package, "source": target.source, "destination": target.dest, "status": status,
            "reason": reason, "report": report}

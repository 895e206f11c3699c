"""Storage records for a successful build: one per mirrored digest (pure; github_reports builds the request).

GitHub's linked-artifacts page matches a record to an image by its digest. A record names the package, the
digest, one tag as its version (the delivery's tag when it points there, else the first tag set), the ECR
registry, the repository inside it, the ECR console page of that repository, and the linked repository.
Cosign signature tags (`sha256-<hex>.sig/.att/.sbom`) are artifacts about an image, not images: no record.
"""

from __future__ import annotations

import re

from chalicelib.outcome.check_output import FinalState, bare
from chalicelib.outcome.requests import DIGEST, StorageRecord
from chalicelib.registry.reference import ecr_host
from chalicelib.values import mapping

_SIGNATURE_TAG = re.compile(r"sha256-[0-9a-f]{64}\.(?:sig|att|sbom)")
MAX_RECORDS = 20  # digests per build; a build copies one pushed digest (and the few its tags name)


def records_for(state: FinalState, github_repository: str) -> list[StorageRecord]:
    """Return one record per digest the build left tagged in ECR (the pushed digest first)."""
    if _SIGNATURE_TAG.fullmatch(state.tag):
        return []  # a signature push: its build copies a signature, or nothing
    report = state.report or {}
    host, _, repository = bare(state.destination).partition("/")
    digests = mapping(report.get("digests"))
    tags = mapping(report.get("tags"))
    done = {t for key in ("set", "unchanged") for t in (tags.get(key) or []) if isinstance(t, str)}
    by_digest: dict[str, list[str]] = {state.digest: []}
    for tag, digest in digests.items():
        if isinstance(tag, str) and isinstance(digest, str) and tag in done and not _SIGNATURE_TAG.fullmatch(tag):
            by_digest.setdefault(digest, []).append(tag)
    package = bare(state.source).split("/", 2)[-1]  # HOST/owner/package: the package name (nested: a/b)
    records = []
    for digest, names in list(by_digest.items())[:MAX_RECORDS]:
        if not DIGEST.fullmatch(digest):
            continue
        version = state.tag if state.tag in names else (names[0] if names else None)
        records.append(StorageRecord(name=package, digest=digest, version=version, registry_url=f"https://{host}",
                                     repository=repository, artifact_url=console_url(host, repository),
                                     github_repository=github_repository))
    return records


def console_url(host: str, repository: str) -> str | None:
    """Return the ECR console page of a repository for an ECR registry host; None for other registries."""
    found = ecr_host(host)  # the one ECR host grammar (chalicelib/registry/reference.py)
    if found is None:
        return None
    account, region = found
    return f"https://{region}.console.aws.amazon.com/ecr/repositories/private/{account}/{repository}?region={region}"

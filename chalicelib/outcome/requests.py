"""What reports tell GitHub, as pure data (no I/O): the bodies of check runs and storage records.

Each builder checks its input and cuts it to GitHub's bounds, raising ValueError for what GitHub would refuse;
GitHubApp (chalicelib/github/app.py) sends the bodies, each write with its own installation token for the one
repository (chalicelib/outcome/reporting.py). The bodies stay out of the seam: they are what a tenant reads.

- Check runs (docs.github.com rest/checks/runs; only GitHub Apps may write them, permission `checks: write`):
  created with `name`, `head_sha`, `status`, `external_id`, `output`; completed with `status`, `conclusion`,
  `completed_at`, `output`; `output.summary`/`text` ≤ 65,535 characters.
- Storage records (docs.github.com rest/orgs/artifact-metadata, permission `artifact_metadata: write`):
  githubkit's body model (githubkit_schemas v2026_03_10 `OrgsOrgArtifactsMetadataStorageRecordPostBody`)
  bounds the fields: `name` 1-256, `digest` `sha256:<64 hex>`, `version` 1-100, `artifact_url` https and
  ≤ 152, `registry_url` https and ≤ 256, `repository` ≤ 128, `github_repository` a repository name
  (`[A-Za-z0-9._-]`, ≤ 100) of that organization.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from chalicelib.github.app import REPOSITORY_NAME

CHECK_NAME = "ghcr2ecr"
SUMMARY_LIMIT = 65_535
TITLE_LIMIT = 255  # not documented; GitHub shows one line
SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # a commit id: SHA-1, or SHA-256 repositories
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
CONCLUSIONS = frozenset({"success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required"})


@dataclass(frozen=True)
class Output:
    """What a tenant reads on the check run: a one-line title and a Markdown summary."""

    title: str
    summary: str

    def to_json(self) -> dict[str, str]:
        """Return the `output` object, cut to GitHub's limits."""
        return {"title": _cut(" ".join(self.title.split()), TITLE_LIMIT), "summary": _cut(self.summary, SUMMARY_LIMIT)}


@dataclass(frozen=True)
class StorageRecord:
    """One mirrored digest, as the linked-artifacts page shows it."""

    name: str
    digest: str
    registry_url: str
    repository: str
    github_repository: str
    version: str | None = None
    artifact_url: str | None = None


def check_run(head_sha: str, external_id: str, output: Output, conclusion: str | None = None,
              now: datetime | None = None) -> dict[str, Any]:
    """Return a new `ghcr2ecr` check run on `head_sha`: queued (the build starts), or completed with `conclusion`."""
    if not SHA.fullmatch(head_sha):
        raise ValueError("the image's revision is not a commit sha")
    body: dict[str, Any] = {"name": CHECK_NAME, "head_sha": head_sha, "external_id": external_id,
                            "output": output.to_json()}
    if conclusion is None:
        body["status"] = "queued"
    else:
        body.update(_completion(conclusion, now))
    return body


def completion(conclusion: str, output: Output, now: datetime | None = None) -> dict[str, Any]:
    """Return a check run's completion: status, conclusion, time, and what the tenant should read."""
    return {**_completion(conclusion, now), "output": output.to_json()}


def storage_record(record: StorageRecord) -> dict[str, Any]:
    """Return one artifact storage record; optional fields outside GitHub's bounds are left out."""
    if not DIGEST.fullmatch(record.digest):
        raise ValueError("storage records take sha256 digests only")
    if not REPOSITORY_NAME.fullmatch(record.github_repository):
        raise ValueError("github_repository must be a repository name of the organization")
    if not (record.registry_url.startswith("https://") and len(record.registry_url) <= 256):
        raise ValueError("registry_url must be an https URL of at most 256 characters")
    body: dict[str, Any] = {"name": _cut(record.name, 256), "digest": record.digest,
                            "registry_url": record.registry_url, "github_repository": record.github_repository,
                            "status": "active"}
    if record.repository and len(record.repository) <= 128:
        body["repository"] = record.repository
    if record.version and len(record.version) <= 100:
        body["version"] = record.version
    if record.artifact_url and record.artifact_url.startswith("https://") and len(record.artifact_url) <= 152:
        body["artifact_url"] = record.artifact_url
    return body


def _completion(conclusion: str, now: datetime | None) -> dict[str, str]:
    if conclusion not in CONCLUSIONS:
        raise ValueError(f"not a check run conclusion: {conclusion!r}")
    when = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"status": "completed", "conclusion": conclusion, "completed_at": when}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

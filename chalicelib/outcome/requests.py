"""Requests that report an outcome to GitHub, as pure data (no I/O), in the manner of gidgethub's sansio.

Each builder returns an ApiRequest: method, path under the REST base, JSON body, and the one permission its
token needs (each write gets its own installation token for the one repository: chalicelib/outcome/reporting.py).

- Check runs (docs.github.com rest/checks/runs; only GitHub Apps may write them, permission `checks: write`):
  `POST /repos/{owner}/{repo}/check-runs` (`name`, `head_sha`, `status`, `external_id`, `output`),
  `GET` and `PATCH /repos/{owner}/{repo}/check-runs/{id}`; `output.summary`/`text` ≤ 65,535 characters.
- Storage records (docs.github.com rest/orgs/artifact-metadata, permission `artifact_metadata: write`):
  `POST /orgs/{org}/artifacts/metadata/storage-record`; githubkit's body model (githubkit_schemas
  v2026_03_10 `OrgsOrgArtifactsMetadataStorageRecordPostBody`) bounds the fields: `name` 1-256, `digest`
  `sha256:<64 hex>`, `version` 1-100, `artifact_url` https and ≤ 152, `registry_url` https and ≤ 256,
  `repository` ≤ 128, `github_repository` a repository name (`[A-Za-z0-9._-]`, ≤ 100) of that organization.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

CHECK_NAME = "ghcr2ecr"
SUMMARY_LIMIT = 65_535
TITLE_LIMIT = 255  # not documented; GitHub shows one line
SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # a commit id: SHA-1, or SHA-256 repositories
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
REPOSITORY_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}(?:_[A-Za-z0-9]{1,38})?")
CONCLUSIONS = frozenset({"success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required"})


@dataclass(frozen=True)
class ApiRequest:
    """One GitHub REST call: method, path, JSON body, and the token permission it needs (besides metadata)."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    permission: str = ""  # "checks" | "artifact_metadata"; "" for reads any token of the repository may make


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


def repository_path(full_name: str) -> str:
    """Return `/repos/{owner}/{repo}` for `owner/repo`, refusing anything else (it becomes a URL path)."""
    owner, _, name = full_name.partition("/")
    if not (OWNER.fullmatch(owner) and REPOSITORY_NAME.fullmatch(name) and name not in (".", "..")):
        raise ValueError(f"not a repository full name: {full_name[:80]!r}")
    return f"/repos/{owner}/{name}"


def create_check_run(repository: str, head_sha: str, external_id: str, output: Output,
                     conclusion: str | None = None, now: datetime | None = None) -> ApiRequest:
    """POST a `ghcr2ecr` check run on `head_sha`: queued (the build starts), or completed with `conclusion`."""
    if not SHA.fullmatch(head_sha):
        raise ValueError("the image's revision is not a commit sha")
    body: dict[str, Any] = {"name": CHECK_NAME, "head_sha": head_sha, "external_id": external_id,
                            "output": output.to_json()}
    if conclusion is None:
        body["status"] = "queued"
    else:
        body.update(_completion(conclusion, now))
    return ApiRequest("POST", f"{repository_path(repository)}/check-runs", body, "checks")


def get_check_run(repository: str, check_run_id: int) -> ApiRequest:
    """GET one check run (its `status` and `external_id` tell whether a retried event already completed it)."""
    return ApiRequest("GET", f"{repository_path(repository)}/check-runs/{_id(check_run_id)}", None, "checks")


def complete_check_run(repository: str, check_run_id: int, conclusion: str, output: Output,
                       now: datetime | None = None) -> ApiRequest:
    """PATCH a check run to completed with a conclusion and what the tenant should read."""
    body = {**_completion(conclusion, now), "output": output.to_json()}
    return ApiRequest("PATCH", f"{repository_path(repository)}/check-runs/{_id(check_run_id)}", body, "checks")


def create_storage_record(org: str, record: StorageRecord) -> ApiRequest:
    """POST one artifact storage record; optional fields outside GitHub's bounds are left out."""
    if not OWNER.fullmatch(org):
        raise ValueError(f"not an organization login: {org[:80]!r}")
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
    return ApiRequest("POST", f"/orgs/{quote(org)}/artifacts/metadata/storage-record", body, "artifact_metadata")


def _completion(conclusion: str, now: datetime | None) -> dict[str, str]:
    if conclusion not in CONCLUSIONS:
        raise ValueError(f"not a check run conclusion: {conclusion!r}")
    when = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"status": "completed", "conclusion": conclusion, "completed_at": when}


def _id(check_run_id: int) -> int:
    if type(check_run_id) is not int or check_run_id <= 0:
        raise ValueError("a check run id is a positive number")
    return check_run_id


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""The GitHub stand-in's reporting endpoints: check runs and artifact storage records, with who wrote them.

- `POST /repos/{o}/{r}/check-runs`, `GET`/`PATCH /repos/{o}/{r}/check-runs/{id}`: an installation token whose
  repositories include `r` and whose permissions hold `checks: write` (`read` is enough to GET); else 403
  "Resource not accessible by integration" (404 for another account's repository), as GitHub answers.
  Bodies are checked as GitHub does (`name`, a 40-hex `head_sha`, statuses and conclusions, output limits).
- `POST /orgs/{org}/artifacts/metadata/storage-record`: `artifact_metadata: write`, an organization
  installation, a `github_repository` the token can see; fields bounded as in GitHub's schema.

Every write is kept with the token that made it: `gh.check_runs[id].writes`, `gh.storage_records`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from standins.github_wire import MintedToken, Reply

STATUSES = ("queued", "in_progress", "completed")
CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped", "timed_out")
FORBIDDEN = {"message": "Resource not accessible by integration"}


@dataclass
class CheckRun:
    """A check run as the stand-in holds it; `writes` lists (method, token) of every POST and PATCH."""

    id: int
    owner: str
    repo: str
    name: str
    head_sha: str
    status: str
    external_id: str | None
    conclusion: str | None = None
    output: dict[str, Any] = field(default_factory=dict)
    writes: list[tuple[str, MintedToken]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Return the check run as GitHub's REST API shows it."""
        return {"id": self.id, "name": self.name, "head_sha": self.head_sha, "status": self.status,
                "conclusion": self.conclusion, "external_id": self.external_id,
                "output": {"title": self.output.get("title"), "summary": self.output.get("summary")},
                "html_url": f"https://github.com/{self.owner}/{self.repo}/runs/{self.id}"}


@dataclass(frozen=True)
class StorageRecordWrite:
    """One accepted storage record, and the token that wrote it."""

    org: str
    body: dict[str, Any]
    token: MintedToken


def route(gh: Any, method: str, parts: list[str], body: Any, authorization: str) -> Reply | None:
    """Answer a reporting endpoint, or None when the path is not one of them."""
    match method, parts:
        case "POST", ["repos", owner, repo, "check-runs"]:
            token = _repo_token(gh, authorization, owner, repo, write=True)
            return _create(gh, owner, repo, body if isinstance(body, dict) else {}, token)
        case ("GET" | "PATCH") as verb, ["repos", owner, repo, "check-runs", run_id]:
            token = _repo_token(gh, authorization, owner, repo, write=verb == "PATCH")
            run = gh.check_runs.get(int(run_id)) if run_id.isdigit() else None
            if run is None or (run.owner.lower(), run.repo.lower()) != (owner.lower(), repo.lower()):
                raise Reply(404, {"message": "Not Found"})
            if verb == "GET":
                return Reply(200, run.to_json())
            return _update(run, body if isinstance(body, dict) else {}, token)
        case "POST", ["orgs", org, "artifacts", "metadata", "storage-record"]:
            return _storage_record(gh, org, body if isinstance(body, dict) else {}, authorization)
    return None


def _repo_token(gh: Any, authorization: str, owner: str, repo: str, write: bool) -> MintedToken:
    token = gh._token_auth(authorization)
    inst = gh.installations.get(token.installation_id)
    if inst is None or inst.login.lower() != owner.lower():
        raise Reply(404, {"message": "Not Found"})
    visible = token.repositories if token.repositories is not None else inst.repositories
    if visible is not None and repo.lower() not in {r.lower() for r in visible}:
        raise Reply(404, {"message": "Not Found"})
    if token.permissions.get("checks") not in (("write",) if write else ("read", "write")):
        raise Reply(403, FORBIDDEN)
    return token


def _check_output(body: dict[str, Any]) -> None:
    output = body.get("output")
    if output is None:
        return
    if not (isinstance(output, dict) and isinstance(output.get("title"), str) and isinstance(output.get("summary"), str)
            and len(output["summary"]) <= 65535 and len(str(output.get("text", ""))) <= 65535):
        raise Reply(422, {"message": "Invalid request. output needs title and summary (at most 65535 characters)"})


def _apply_status(run: CheckRun, body: dict[str, Any]) -> None:
    status, conclusion = body.get("status"), body.get("conclusion")
    if status is not None and status not in STATUSES or conclusion is not None and conclusion not in CONCLUSIONS:
        raise Reply(422, {"message": "Invalid request. status or conclusion is not one of the allowed values"})
    if conclusion is not None:
        run.status, run.conclusion = "completed", conclusion  # GitHub: a conclusion completes the run
    elif status == "completed":
        raise Reply(422, {"message": "Invalid request. conclusion is required when status is completed"})
    elif status is not None:
        run.status = status


def _create(gh: Any, owner: str, repo: str, body: dict[str, Any], token: MintedToken) -> Reply:
    name, sha = body.get("name"), body.get("head_sha")
    if not isinstance(name, str) or not name or not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{40}", sha)):
        raise Reply(422, {"message": "Invalid request. name and a commit head_sha are required"})
    _check_output(body)
    external = body.get("external_id")
    run = CheckRun(len(gh.check_runs) + 4001, owner, repo, name, sha, "queued",
                   external if isinstance(external, str) else None)
    _apply_status(run, body)
    run.output = dict(body.get("output") or {})
    run.writes.append(("POST", token))
    gh.check_runs[run.id] = run
    return Reply(201, run.to_json())


def _update(run: CheckRun, body: dict[str, Any], token: MintedToken) -> Reply:
    _check_output(body)
    _apply_status(run, body)
    if body.get("output"):
        run.output = dict(body["output"])
    run.writes.append(("PATCH", token))
    return Reply(200, run.to_json())


def _storage_record(gh: Any, org: str, body: dict[str, Any], authorization: str) -> Reply:
    token = gh._token_auth(authorization)
    inst = gh.installations.get(token.installation_id)
    if inst is None or inst.login.lower() != org.lower() or inst.target_type != "Organization":
        raise Reply(404, {"message": "Not Found"})
    if token.permissions.get("artifact_metadata") != "write":
        raise Reply(403, FORBIDDEN)
    rules = {
        "name": lambda v: isinstance(v, str) and 1 <= len(v) <= 256,
        "digest": lambda v: isinstance(v, str) and re.fullmatch(r"sha256:[a-f0-9]{64}", v),
        "registry_url": lambda v: isinstance(v, str) and v.startswith("https://") and len(v) <= 256,
    }
    optional = {
        "version": lambda v: isinstance(v, str) and 1 <= len(v) <= 100,
        "artifact_url": lambda v: isinstance(v, str) and v.startswith("https://") and len(v) <= 152,
        "repository": lambda v: isinstance(v, str) and len(v) <= 128,
        "status": lambda v: v in ("active", "eol", "deleted"),
        "github_repository": lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9.\-_]{1,100}", v),
        "path": lambda v: isinstance(v, str) and len(v) <= 512,
    }
    bad = [k for k, ok in rules.items() if not ok(body.get(k))]
    bad += [k for k, ok in optional.items() if k in body and not ok(body[k])]
    bad += [k for k in body if k not in rules and k not in optional and k != "return_records"]
    if bad:
        raise Reply(422, {"message": f"Invalid request. Invalid property: {sorted(bad)[0]}"})
    repo = body.get("github_repository")
    visible = token.repositories if token.repositories is not None else inst.repositories
    if repo is not None and visible is not None and repo.lower() not in {r.lower() for r in visible}:
        raise Reply(404, {"message": "Not Found"})
    gh.storage_records.append(StorageRecordWrite(org, dict(body), token))
    number = len(gh.storage_records)
    return Reply(200, {"total_count": 1, "storage_records": [{"id": 9000 + number, **{
        k: body.get(k) for k in ("name", "digest", "artifact_url", "registry_url", "repository", "status")}}]})

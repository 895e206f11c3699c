"""The build's contract: every variable dispatch hands a build, and the one reader of a finished build.

Dispatch writes these (StartBuild's environmentVariablesOverride); the build reads them from its
environment; on_build_state reads them back from the CodeBuild event, `ghcr2ecr status` from
BatchGetBuilds. PLAINTEXT values show in the console, BatchGetBuilds and events (FACTS.md §7): they hold
names and ids only; credentials travel by reference (PARAMETER_STORE, SECRETS_MANAGER).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.build.job import VARIABLE, BuildJob

# Written by dispatch.
JOB = VARIABLE  # GHCR2ECR_JOB: the job, PLAINTEXT (chalicelib/build/job.py serializes it)
API_URL = "GITHUB_API_URL"
INSTALLATION_ID = "GHCR2ECR_INSTALLATION_ID"
SOURCE_TOKEN = "GHCR2ECR_SOURCE_TOKEN"  # PARAMETER_STORE: the first source credential (installation or job token)
FALLBACK_TOKEN = "GHCR2ECR_SOURCE_FALLBACK_TOKEN"  # SECRETS_MANAGER: the operator's read credential
REPORT_BUCKET = "GHCR2ECR_REPORT_BUCKET"
REVISION = "GHCR2ECR_REVISION"  # the image's source commit
GITHUB_REPOSITORY = "GHCR2ECR_GITHUB_REPOSITORY"  # the package's linked repository, "Owner/name"
CHECK_RUN_ID, CHECK_RUN_EXTERNAL_ID = "GHCR2ECR_CHECK_RUN_ID", "GHCR2ECR_CHECK_RUN_EXTERNAL_ID"
STORAGE_RECORDS = "GHCR2ECR_STORAGE_RECORDS"  # "true": write storage records when the build succeeds
# A hand-off build's installation token (PARAMETER_STORE): the build revokes this one, never SOURCE_TOKEN,
# which is then the tenant job's GITHUB_TOKEN (DESIGN.md, "The workflow hand-off").
INSTALLATION_TOKEN = "GHCR2ECR_INSTALLATION_TOKEN"

FINAL_STATES = ("SUCCEEDED", "FAILED", "FAULT", "STOPPED", "TIMED_OUT")  # CodeBuild's ends of a build


def event_pattern(project: str) -> dict[str, Any]:
    """Return the EventBridge pattern on_build_state listens to: final states of the copy project's builds."""
    return {
        "source": ["aws.codebuild"],
        "detail-type": ["CodeBuild Build State Change"],
        "detail": {"project-name": [project], "build-status": list(FINAL_STATES)},
    }


def variable(name: str, value: str, kind: str = "PLAINTEXT") -> dict[str, str]:
    """Return one StartBuild environment override."""
    return {"name": name, "value": value, "type": kind}


def by_name(entries: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Index a build's variables ({name, value, type}) by name; anything malformed is dropped."""
    return {str(e["name"]): e for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)}


@dataclass(frozen=True)
class FinishedBuild:
    """A build as its variables and its stored report describe it: what it copied and how it ended."""

    build_id: str
    status: str
    variables: Mapping[str, Mapping[str, Any]]
    job: BuildJob | None
    report: Mapping[str, Any] | None = None

    def plain(self, name: str) -> str:
        """Return a PLAINTEXT variable's value ("" when absent or not PLAINTEXT)."""
        entry = self.variables.get(name) or {}
        return str(entry.get("value", "")) if entry.get("type", "PLAINTEXT") == "PLAINTEXT" else ""


    @property
    def package(self) -> str:
        """Return the one package's source, or "N packages"."""
        return str(self.job.summary["package"]) if self.job else ""

    @property
    def digest(self) -> str:
        """Return the pushed digest the build was started for ("" for every-tag syncs)."""
        return (self.job.selection.digest or "") if self.job else ""

    @property
    def tag(self) -> str:
        """Return the tag the event named ("" when none)."""
        return (self.job.selection.tag or "") if self.job else ""

    @property
    def handoff(self) -> bool:
        """Tell whether the build was started by a workflow hand-off (its source token is the job's)."""
        return bool(self.job and self.job.origin == "handoff")

    def package_reports(self) -> list[Mapping[str, Any]]:
        """Return run-job's per-package results (`packages[]`), each with its sync `report`."""
        packages = self.report.get("packages") if self.report else None
        return [p for p in packages if isinstance(p, Mapping)] if isinstance(packages, list) else []

    def moved(self) -> dict[str, Any]:
        """Return `bytes_moved` and `duration_seconds` of a one-package build's sync report (those it holds)."""
        results = self.package_reports()
        report = results[0].get("report") if len(results) == 1 else None
        found: dict[str, Any] = {}
        if isinstance(report, Mapping):
            moved, seconds = report.get("bytes_moved"), report.get("duration_seconds")
            if isinstance(moved, int) and not isinstance(moved, bool):
                found["bytes_moved"] = moved
            if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
                found["duration_seconds"] = round(float(seconds), 3)
        return found

    @property
    def tags(self) -> list[str]:
        """Return every tag the build set or found in place, across its packages; else the event's tag."""
        found: list[str] = []
        for result in self.package_reports():
            report = result.get("report")
            reported = report.get("tags") if isinstance(report, Mapping) else None
            if isinstance(reported, Mapping):
                found += [str(t) for key in ("set", "unchanged") for t in reported.get(key) or []]
        return list(dict.fromkeys(found)) or ([self.tag] if self.tag else [])

    @property
    def cause(self) -> str:
        """Return the first failed package's reason or sync error ("" when none is recorded)."""
        for result in self.package_reports():
            if result.get("status") != "failed":
                continue
            report = result.get("report")
            errors = report.get("errors") if isinstance(report, Mapping) else None
            if isinstance(errors, list) and errors:
                return str(errors[0])
            if result.get("reason"):
                return str(result["reason"])
        return ""


def finished_build(build_id: str, status: str, entries: Iterable[Any],
                   report: Mapping[str, Any] | None = None) -> FinishedBuild:
    """Read a build from its variables (an event's or BatchGetBuilds') and its report (run-job's JSON)."""
    variables = by_name(entries)
    return FinishedBuild(build_id=build_id, status=status, variables=variables,
                         job=BuildJob.from_variables(variables), report=report)

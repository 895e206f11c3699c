"""What dispatch hands the build: a Job with each package resolved to source, destination and settings.

It travels as one PLAINTEXT variable, GHCR2ECR_JOB (JSON). PLAINTEXT shows in the console, BatchGetBuilds
and EventBridge events (FACTS.md §7), so it holds names, ids and globs only: the token goes by reference.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from chalicelib.jobs import ORIGINS, Selection

VARIABLE = "GHCR2ECR_JOB"
MAX_CHARS = 24_000  # UNVERIFIED: CodeBuild documents no per-variable limit; 50 packages take about 15,000


class InvalidBuildJob(ValueError):
    """GHCR2ECR_JOB is missing or not a build job (exit 2: a usage error)."""


@dataclass(frozen=True)
class Target:
    """One package of the build: where from, where to, and the installation's settings for it."""

    package: str  # owner/package, lower-cased (ghcr.io's path)
    source: str  # HOST/owner/package (http:// only for loopback, as `ghcr2ecr sync` accepts)
    dest: str  # REGISTRY/prefix/owner/repository
    owner_id: int
    repository: str | None  # the linked repository
    tags: str | None  # GHCR2ECR_TAGS as written (None: every tag)
    signatures: bool
    checks: bool = True  # GHCR2ECR_CHECKS (dispatch creates the check run; the build never writes to GitHub)


@dataclass(frozen=True)
class BuildJob:
    """The build's whole job: ids, the selection, one Target per package, and when to stop starting syncs."""

    origin: str
    correlation_id: str
    installation_id: int
    owner: str
    selection: Selection
    targets: tuple[Target, ...]
    create_repository: bool = True
    deadline: float = 0.0  # epoch seconds: no sync starts after it (the installation token's hour)

    @property
    def summary(self) -> dict[str, Any]:
        """Return the few fields a log line or a status listing shows."""
        first = self.targets[0] if self.targets else None
        return {"origin": self.origin, "correlation_id": self.correlation_id,
                "installation": str(self.installation_id), "packages": len(self.targets),
                "package": first.source if first and len(self.targets) == 1 else f"{len(self.targets)} packages",
                "digest": self.selection.digest, "tag": self.selection.tag}

    def to_json(self) -> str:
        """Serialize for the PLAINTEXT variable; raise ValueError when it would be too large."""
        text = json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)
        if len(text) > MAX_CHARS:
            raise ValueError(f"build job of {len(self.targets)} packages is {len(text)} characters, over {MAX_CHARS}")
        return text

    @classmethod
    def from_json(cls, text: str) -> BuildJob:
        """Parse GHCR2ECR_JOB; raise InvalidBuildJob when it is not one."""
        try:
            data = json.loads(text)
            targets = tuple(Target(**t) for t in data.pop("targets"))
            job = cls(selection=Selection(**data.pop("selection")), targets=targets, **data)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            raise InvalidBuildJob(f"{VARIABLE} is not a build job ({type(exc).__name__})") from None
        if job.origin not in ORIGINS or not job.targets or not all(isinstance(t.source, str) and isinstance(
                t.dest, str) and type(t.owner_id) is int for t in job.targets):
            raise InvalidBuildJob(f"{VARIABLE} is not a build job (origin or targets)")
        return job

    @classmethod
    def from_variables(cls, variables: Mapping[str, Any]) -> BuildJob | None:
        """Read the job from a build's variables ({name: value} or {name: {type, value}}); None when absent."""
        entry = variables.get(VARIABLE)
        if isinstance(entry, Mapping):
            entry = entry.get("value") if entry.get("type", "PLAINTEXT") == "PLAINTEXT" else None
        if not isinstance(entry, str) or not entry:
            return None
        try:
            return cls.from_json(entry)
        except InvalidBuildJob:
            return None

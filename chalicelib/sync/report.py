"""The outcome of one sync (`Report`, whose `to_dict()` is the `--report` JSON) and the progress seam."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.sync.copy import Stats
from chalicelib.registry.redact import redact, redact_all


class ProgressSink(Protocol):
    """Receives the live counters and phase changes of a run (the CLI prints them)."""

    def start(self, stats: Stats) -> None: ...
    def phase(self, name: str) -> None: ...
    def stop(self) -> None: ...


@dataclass
class Report:
    """The outcome of one sync; `to_dict()` is the `--report` JSON."""

    source: str
    destination: str
    stats: Stats = field(default_factory=Stats)
    digests: dict[str, str] = field(default_factory=dict)  # tag -> digest it should point at
    tags_set: list[str] = field(default_factory=list)
    tags_unchanged: list[str] = field(default_factory=list)
    tags_skipped: dict[str, str] = field(default_factory=dict)  # asked-for cosign tag -> why it was not set
    aliases: list[str] = field(default_factory=list)  # tags (set or unchanged) found on the root digests
    tags_unchecked: list[str] = field(default_factory=list)  # candidates past the budget: not resolved
    left_undone: list[str] = field(default_factory=list)  # tags not set because the deadline passed
    signatures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # facts worth saying about a successful run
    conflicts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # not failures: invalid listed tags, unchecked aliases, ...
    credentials_tried: list[str] = field(default_factory=list)
    repository_created: bool | None = None
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when everything asked for is in the destination with identical digests."""
        return not self.errors and not self.conflicts

    @property
    def exit_code(self) -> int:
        """Return the CLI exit code: 0 when ok, 1 otherwise."""
        return 0 if self.ok else 1

    def cause(self) -> str:
        """Return a one-line cause of failure ('' when ok)."""
        causes = self.errors + [f"immutable tag conflict: {c}" for c in self.conflicts]
        if not causes:
            return ""
        more = f" (and {len(causes) - 1} more problem(s); see --report)" if len(causes) > 1 else ""
        return redact(" ".join(causes[0].split()) + more)

    def to_dict(self) -> dict[str, Any]:
        """Render the JSON report (no credential values, only their kinds; any echoed one is masked)."""
        s = self.stats
        return redact_all({
            "ok": self.ok, "source": self.source, "destination": self.destination,
            "manifests": {"copied": s.manifests_copied, "skipped": s.manifests_skipped},
            "blobs": {"copied": s.blobs_copied, "skipped": s.blobs_skipped, "mounted": s.blobs_mounted},
            "bytes_moved": s.bytes_moved,
            "tags": {"set": self.tags_set, "unchanged": self.tags_unchanged, "conflicts": self.conflicts,
                     "skipped": self.tags_skipped, "aliases": self.aliases, "unchecked": self.tags_unchecked},
            "left_undone": self.left_undone, "notes": self.notes,
            "signatures": self.signatures, "digests": self.digests, "errors": self.errors,
            "warnings": self.warnings,
            "credentials_tried": self.credentials_tried, "repository_created": self.repository_created,
            "duration_seconds": round(self.duration_seconds, 3),
        })

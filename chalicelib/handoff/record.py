"""The hand-off record: what the action polls (`GET /github/handoff/{id}`), kept in the report bucket.

Layout (REPORT_BUCKET; infra/support-stack.yml, objects expire):
- `handoffs/<id>.json`: the record; the route writes it `queued`, dispatch `running` (or `failed` with the
  reason it refused), on_build_state `succeeded` or `failed`. A final status is never overwritten.
- `handoffs/digests/<owner id>/<package>/<digest>`: a digest a hand-off mirrors; dispatch starts no build for
  the same digest's registry_package event (one outcome per digest: DESIGN.md, "The workflow hand-off").
The record holds names, ids and the outcome, never a credential: the job token lives only in SSM.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from chalicelib import aws

STATUSES = ("queued", "running", "succeeded", "failed")
FINAL = ("succeeded", "failed")
RECORD_LIMIT = 64 * 1024  # bytes; a record is a few hundred
ID = re.compile(r"[0-9a-f]{32}")  # what new_id makes: the only ids a route or queue message may name


@dataclass(frozen=True)
class Handoff:
    """One hand-off: who handed which image over, and how its copy went."""

    id: str
    repository_id: int  # the ID token's: the only repository that may read this record
    repository: str  # "owner/name", for messages
    owner_id: int
    owner: str
    package: str  # the package name as the image reference spells it (lower case)
    digest: str
    tag: str | None = None
    status: str = "queued"
    image: str = ""  # the ECR reference by digest, once dispatch knows the destination
    tags: tuple[str, ...] = ()
    reason: str = ""
    build_id: str = ""
    bytes_moved: int | None = None
    duration_seconds: float | None = None
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def answer(self) -> dict[str, Any]:
        """Return the status route's JSON body."""
        body: dict[str, Any] = {"status": self.status, "image": self.image, "tags": list(self.tags),
                                "reason": self.reason}
        if self.bytes_moved is not None:
            body["bytes_moved"] = self.bytes_moved
        if self.duration_seconds is not None:
            body["duration_seconds"] = self.duration_seconds
        return body

    def to_json(self) -> bytes:
        """Serialize for the bucket."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Handoff | None:
        """Parse a stored record; None when it is not one."""
        try:
            fields = json.loads(data)
            fields["tags"] = tuple(str(t) for t in fields.get("tags") or ())
            record = cls(**fields)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            return None
        return record if record.status in STATUSES and ID.fullmatch(record.id) else None


def new_id() -> str:
    """Return a fresh hand-off id (128 random bits, hex)."""
    return secrets.token_hex(16)


def record_key(handoff_id: str) -> str:
    """Return the object key of a hand-off's record."""
    return f"handoffs/{handoff_id}.json"


def digest_key(owner_id: int, package: str, digest: str) -> str:
    """Return the key marking a digest as mirrored by a hand-off (the package name hashed: nested names)."""
    name = hashlib.sha256(package.lower().encode()).hexdigest()[:32]
    return f"handoffs/digests/{owner_id}/{name}/{digest}"


def save(bucket: str, handoff: Handoff) -> None:
    """Write a record (and, while it is not failed, its digest marker)."""
    aws.s3().put(bucket, record_key(handoff.id), handoff.to_json())
    if handoff.status != "failed":
        aws.s3().put(bucket, digest_key(handoff.owner_id, handoff.package, handoff.digest), handoff.id.encode())


def load(bucket: str, handoff_id: str) -> Handoff | None:
    """Read a record; None when the id is malformed or unknown."""
    if not ID.fullmatch(handoff_id or ""):
        return None
    data = aws.s3().get(bucket, record_key(handoff_id), RECORD_LIMIT)
    return Handoff.from_json(data) if data is not None else None


def update(bucket: str, handoff_id: str, **changes: Any) -> Handoff | None:
    """Change a record's outcome fields; a final status stays final. Return the record as stored (None: unknown)."""
    current = load(bucket, handoff_id)
    if current is None or current.status in FINAL:
        return current
    if "tags" in changes:
        changes["tags"] = tuple(changes["tags"])
    new = replace(current, **changes, updated=time.time())
    aws.s3().put(bucket, record_key(handoff_id), new.to_json())
    if new.status == "failed":  # the event's own build may mirror the digest after all
        aws.s3().delete(bucket, digest_key(new.owner_id, new.package, new.digest))
    return new


def mirrored_by_handoff(bucket: str, owner_id: int, package: str, digest: str) -> str | None:
    """Return the id of the hand-off that mirrors this digest, or None."""
    data = aws.s3().get(bucket, digest_key(owner_id, package, digest), 64)
    text = data.decode(errors="replace") if data is not None else ""
    return text if ID.fullmatch(text) else None

"""The queue's one message type, a Job: which packages of one installation to sync, and what of them.

Webhooks (a pushed digest, a backfill on installation) and schedules (reconcile) enqueue the same Job;
dispatch turns it into one build. A Job holds ids and names, never a credential. `from_json` validates
every field that ends up in a reference, a queue attribute or a build variable.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

# The OCI grammar the copy engine checks too: a queued job is one `ghcr2ecr sync` accepts.
from chalicelib.registry.reference import DIGEST_PATTERN, REPOSITORY_PATTERN, TAG_PATTERN

# Where a job comes from: a registry_package delivery (first or redelivered), a backfill on installation,
# the reconcile schedule, an operator's `ghcr2ecr reconcile`, or a workflow's hand-off (POST /github/handoff:
# its installation is found by dispatch, so it is queued with installation id 0 and the hand-off id).
ORIGINS = ("webhook", "backfill", "reconcile", "operator", "handoff")
MAX_PACKAGES = 50  # per job and build: StartBuild's PLAINTEXT description stays ~15 KB, dispatch ≤ ~150 GitHub calls

# A GitHub login; Enterprise Managed Users' logins end in `_<enterprise shortcode>` (docs.github.com,
# "Username considerations for external authentication").
LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}(?:_[A-Za-z0-9]{1,38})?")
REPO = re.compile(r"(?!\.\.?\Z)[A-Za-z0-9._-]{1,100}")  # GitHub refuses the names "." and ".."
CORRELATION = re.compile(r"[A-Za-z0-9-]{1,64}")  # a delivery GUID, or a run id
REVISION = re.compile(r"[0-9a-f]{7,64}")  # a git commit id (SHA-1 or SHA-256), from the image's labels


class InvalidJob(ValueError):
    """A job (from a delivery or the queue) lacks a field we need, or holds one we cannot use."""


@dataclass(frozen=True)
class Package:
    """One GHCR package: owner, name, and the repository it is linked to (where its variables live)."""

    owner: str  # owner login, as GitHub spells it
    owner_id: int
    name: str  # package name, as GitHub spells it; may be nested (a/b)
    repository: str | None = None  # the linked repository's name
    organization: bool = False  # the owner is an organization (it has organization variables)

    @property
    def path(self) -> str:
        """Return `owner/package`, lower-cased: the OCI repository path on ghcr.io."""
        return f"{self.owner.lower()}/{self.name.lower()}"

    def source(self, registry: str) -> str:
        """Return the source reference `HOST/owner/package` (never registry.url: FACTS.md §1)."""
        return f"{registry}/{self.path}"


@dataclass(frozen=True)
class Selection:
    """What of each package to sync: one pushed digest and the tag its event named, or every tag.

    The tag globs are the installation's GHCR2ECR_TAGS, read by dispatch when the job runs (never queued,
    so a job waiting in the queue follows the current configuration); the build applies them.
    """

    digest: str | None = None
    tag: str | None = None
    revision: str | None = None  # the image's commit (org.opencontainers.image.revision), when the event names it

    @property
    def all_tags(self) -> bool:
        """Tell whether every tag is selected (reconcile, backfill), not one pushed digest."""
        return self.digest is None


ALL_TAGS = Selection()


@dataclass(frozen=True)
class Job:
    """One queue message: packages of one installation, a selection, where it came from, and its id."""

    installation_id: int
    packages: tuple[Package, ...]
    selection: Selection = ALL_TAGS
    origin: str = "webhook"
    correlation_id: str = ""  # the delivery GUID for webhooks; a run id for schedules and operators

    @property
    def package(self) -> Package:
        """Return the first package (an event's only one)."""
        return self.packages[0]

    @property
    def revision(self) -> str | None:
        """Return the image's commit, when the event named one."""
        return self.selection.revision

    @property
    def dedup_id(self) -> str:
        """Return the FIFO deduplication id.

        A pushed digest: installation, package, digest and tag (not the delivery id, so a manual redelivery and
        the redeliver_failed handler's collapse too). Every tag: installation, packages, origin and run id.
        """
        if self.origin == "handoff":  # one build per hand-off, never collapsed with the same digest's event
            key = f"handoff\n{self.correlation_id}"
        elif not self.selection.all_tags:
            key = f"{self.installation_id}\n{self.package.path}\n{self.selection.digest}\n{self.selection.tag}"
        else:
            key = "\n".join([str(self.installation_id), self.origin, self.correlation_id,
                             *(p.path for p in self.packages)])
        return hashlib.sha256(key.encode()).hexdigest()

    @property
    def group_id(self) -> str:
        """Return the FIFO message group: the package for one-package jobs, else the installation (≤ 128)."""
        if self.origin == "handoff":
            group = f"handoff/{self.package.owner_id}/{self.package.path}"
        elif len(self.packages) == 1:
            group = f"{self.installation_id}/{self.package.path}"
        else:
            group = f"{self.installation_id}/{self.origin}"
        return group if len(group) <= 128 else hashlib.sha256(group.encode()).hexdigest()

    def to_json(self) -> str:
        """Serialize as the queue message body."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Job:
        """Parse a queue message body, raising InvalidJob when it is not one of ours."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            packages = data.pop("packages")
            selection = data.pop("selection", None) or {}
            if not isinstance(packages, list) or not isinstance(selection, dict):
                raise TypeError("packages or selection of the wrong type")
            job = cls(packages=tuple(Package(**p) for p in packages), selection=Selection(**selection), **data)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise InvalidJob(f"queue message is not a job: {type(exc).__name__}: {str(exc)[:120]}") from None
        check(job)
        return job


def event_job(installation_id: int, package: Package, digest: str, tag: str, delivery_id: str,
              revision: str | None = None) -> Job:
    """Return the job of one tagged registry_package event."""
    job = Job(installation_id, (package,), Selection(digest, tag, revision or None), "webhook", delivery_id)
    check(job)
    return job


def handoff_job(package: Package, digest: str, tag: str | None, handoff_id: str, revision: str | None = None) -> Job:
    """Return the job of one hand-off: its installation is looked up by dispatch (the route calls no GitHub API)."""
    revision = revision if revision and REVISION.fullmatch(revision) else None  # the ID token's `sha`
    job = Job(0, (package,), Selection(digest, tag, revision), "handoff", handoff_id)
    check(job)
    return job


def batches(installation_id: int, packages: Iterable[Package], origin: str, correlation_id: str,
            size: int = MAX_PACKAGES) -> list[Job]:
    """Return every-tag jobs for these packages, at most `size` per job (one build each)."""
    unique = list({p.path: p for p in packages}.values())
    jobs = [Job(installation_id, tuple(unique[i:i + size]), ALL_TAGS, origin, correlation_id)
            for i in range(0, len(unique), size)]
    for job in jobs:
        check(job)
    return jobs


def check(job: Job) -> None:
    """Validate every field that ends up in a reference, a queue attribute or a build variable."""
    s = job.selection
    checks = [
        (type(job.installation_id) is int and (job.installation_id > 0 or (job.installation_id == 0 and
                                                 job.origin == "handoff")), "installation.id"),
        (isinstance(job.packages, tuple) and 1 <= len(job.packages) <= MAX_PACKAGES, "packages"),
        (job.origin in ORIGINS, "origin"),
        (isinstance(job.correlation_id, str) and CORRELATION.fullmatch(job.correlation_id), "correlation id"),
        ((s.digest is None and s.tag is None and s.revision is None)
         or (isinstance(s.digest, str) and DIGEST_PATTERN.fullmatch(s.digest)), "package_version.version (digest)"),
        (s.digest is None or (isinstance(s.tag, str) and TAG_PATTERN.fullmatch(s.tag))
         or (s.tag is None and job.origin == "handoff"), "container_metadata.tag.name"),
        (job.origin != "handoff" or (s.digest is not None and len(job.packages) == 1), "hand-off (one digest)"),
        (s.revision is None or (isinstance(s.revision, str) and REVISION.fullmatch(s.revision)), "revision"),
        (s.all_tags or len(job.packages) == 1, "packages (a pushed digest names one package)"),
    ]
    for ok, name in checks:
        if not ok:
            raise InvalidJob(f"job has an unusable {name}")
    owners = {p.owner_id for p in job.packages}
    for p in job.packages:
        _check_package(p)
    if len(owners) != 1:
        raise InvalidJob("job has packages of several owners (one installation is one account)")


def _check_package(p: Package) -> None:
    checks = [
        (type(p.owner_id) is int and p.owner_id > 0, "owner.id"),
        (isinstance(p.owner, str) and LOGIN.fullmatch(p.owner), "owner.login"),
        (isinstance(p.name, str) and len(p.name) <= 200 and REPOSITORY_PATTERN.fullmatch(p.name.lower()), "name"),
        (p.repository is None or (isinstance(p.repository, str) and REPO.fullmatch(p.repository)), "repository.name"),
        (isinstance(p.organization, bool), "organization"),
    ]
    for ok, name in checks:
        if not ok:
            raise InvalidJob(f"job has a package with an unusable {name}")


def repositories(packages: Sequence[Package]) -> list[str] | None:
    """Return the linked repositories to scope a token to, or None when a package has none (unscoped)."""
    names = [p.repository for p in packages]
    if any(name is None for name in names):
        return None
    return sorted({n for n in names if n is not None}, key=str.lower)

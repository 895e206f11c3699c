"""Webhook deliveries, without I/O: signature check, then event → SyncRequest | Ignored | InstallationChange.

Only the few fields needed are read from the raw JSON, after the signature is verified (githubkit's typed
parse empties `container_metadata.manifest` and rejects a null `description`: FACTS.md §1).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

# The OCI grammar the copy engine checks too: a queued request is one `ghcr2ecr sync` accepts.
from chalicelib.registry.reference import DIGEST_PATTERN, REPOSITORY_PATTERN, TAG_PATTERN

MAX_BODY_BYTES = 5 * 1024 * 1024  # GitHub caps payloads at 25 MB; ours are a few KB, installation lists more
SIGNATURE_PREFIX = "sha256="
SYNC_ACTIONS = frozenset({"published", "updated"})

# A GitHub login; Enterprise Managed Users' logins end in `_<enterprise shortcode>` (docs.github.com,
# "Username considerations for external authentication").
_LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}(?:_[A-Za-z0-9]{1,38})?")
_REPO = re.compile(r"(?!\.\.?\Z)[A-Za-z0-9._-]{1,100}")  # GitHub refuses the names "." and ".."
_DELIVERY = re.compile(r"[A-Za-z0-9-]{1,64}")  # a GUID


class MalformedDelivery(ValueError):
    """A signed delivery lacks a field we need, or holds one we cannot use (HTTP 400)."""


@dataclass(frozen=True)
class SyncRequest:
    """One image to copy: the queue message body, holding ids and names, never a credential."""

    delivery_id: str
    installation_id: int
    owner: str  # package owner login, as GitHub spells it
    owner_id: int
    package: str  # package name, as GitHub spells it; may be nested (a/b)
    digest: str
    tag: str
    repository: str | None  # the linked repository's name, when the event names one
    action: str
    organization: bool = False  # the owner is an organization (it has organization variables)

    @property
    def package_path(self) -> str:
        """Return `owner/package`, lower-cased: the OCI repository path on ghcr.io."""
        return f"{self.owner.lower()}/{self.package.lower()}"

    def source(self, registry: str) -> str:
        """Return the source reference `HOST/owner/package` (never registry.url: FACTS.md §1)."""
        return f"{registry}/{self.package_path}"

    @property
    def dedup_id(self) -> str:
        """Return the FIFO deduplication id: installation, package, digest and tag (not the delivery id,
        so a manual redelivery collapses too)."""
        key = f"{self.installation_id}\n{self.package_path}\n{self.digest}\n{self.tag}"
        return hashlib.sha256(key.encode()).hexdigest()

    @property
    def group_id(self) -> str:
        """Return the FIFO message group: the package (≤ 128 characters, SQS's limit)."""
        group = f"{self.installation_id}/{self.package_path}"
        return group if len(group) <= 128 else hashlib.sha256(group.encode()).hexdigest()

    def to_json(self) -> str:
        """Serialize as the queue message body."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SyncRequest:
        """Parse a queue message body, raising MalformedDelivery when it is not one of ours."""
        try:
            data = json.loads(text)
            request = cls(**data)
        except (ValueError, TypeError) as exc:
            raise MalformedDelivery(f"queue message is not a sync request: {exc}") from None
        _check_request(request)
        return request


@dataclass(frozen=True)
class Ignored:
    """A valid delivery with nothing to do, and why."""

    reason: str
    account_login: str | None = None
    account_id: int | None = None


@dataclass(frozen=True)
class InstallationChange:
    """An installation lifecycle event: acknowledged; dispatch asks GitHub about the installation each time."""

    action: str
    installation_id: int
    account_login: str
    account_id: int


Decision = SyncRequest | Ignored | InstallationChange


def signature_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    """Check `X-Hub-Signature-256` (`sha256=` + hex HMAC-SHA256 of the raw body) in constant time."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "replace"))


def sign(secret: bytes, body: bytes) -> str:
    """Return the `X-Hub-Signature-256` value GitHub would send for `body` (tests, bench, demo)."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def decide(event: str, delivery_id: str, body: bytes) -> Decision:
    """Turn a verified delivery into what to do; raise MalformedDelivery for a body we cannot use."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting (UnicodeDecodeError is a ValueError)
        raise MalformedDelivery("body is not JSON") from None
    if not isinstance(payload, dict):
        raise MalformedDelivery("body is not a JSON object")
    if event == "ping":
        return Ignored("ping")
    if event in ("installation", "installation_repositories"):
        return _installation(event, payload)
    if event != "registry_package":
        return Ignored(f"event {event[:64]!r} is not handled")
    return _registry_package(delivery_id, payload)


def _installation(event: str, payload: dict[str, Any]) -> InstallationChange:
    inst = _obj(payload, "installation")
    account = _obj(inst, "account")
    return InstallationChange(
        action=f"{event}.{_str(payload, 'action')}",
        installation_id=_int(inst, "id"),
        account_login=_str(account, "login"),
        account_id=_int(account, "id"),
    )


def _registry_package(delivery_id: str, payload: dict[str, Any]) -> Decision:
    package = _obj(payload, "registry_package")
    owner = _obj(package, "owner")
    login, owner_id = _str(owner, "login"), _int(owner, "id")
    action = _str(payload, "action")
    # GHCR sends "CONTAINER", older docs say "container"; "docker" is the legacy docker.pkg.github.com.
    package_type = str(package.get("package_type") or "")
    if action not in SYNC_ACTIONS:
        return Ignored(f"action {action[:32]!r} is not a publication", login, owner_id)
    if package_type.lower() != "container":
        return Ignored(f"{package_type[:32] or 'unknown'} package: only container images are mirrored", login, owner_id)
    version = _obj(package, "package_version")
    metadata = version.get("container_metadata")
    tag_obj = metadata.get("tag") if isinstance(metadata, dict) else None
    tag = tag_obj.get("name") if isinstance(tag_obj, dict) else None
    if not tag:
        # One event per manifest of a multi-platform push; the tagged index event brings them all.
        return Ignored("untagged manifest: copied with its tagged index", login, owner_id)
    digest = version.get("version")
    if not (isinstance(digest, str) and DIGEST_PATTERN.fullmatch(digest)):
        digest = tag_obj.get("digest") if isinstance(tag_obj, dict) else None
    repository = payload.get("repository")
    repo_name = repository.get("name") if isinstance(repository, dict) else None
    request = SyncRequest(
        delivery_id=delivery_id,
        installation_id=_int(_obj(payload, "installation"), "id"),
        owner=login,
        owner_id=owner_id,
        package=_str(package, "name"),
        digest=digest if isinstance(digest, str) else "",
        tag=tag if isinstance(tag, str) else "",
        repository=repo_name if isinstance(repo_name, str) else None,
        action=action,
        organization=owner.get("type") == "Organization" or isinstance(payload.get("organization"), dict),
    )
    _check_request(request)
    return request


def _check_request(r: SyncRequest) -> None:
    """Validate every field that ends up in a reference, a queue attribute or a build variable."""
    checks = [
        (type(r.installation_id) is int and r.installation_id > 0, "installation.id"),
        (type(r.owner_id) is int and r.owner_id > 0, "owner.id"),
        (isinstance(r.owner, str) and _LOGIN.fullmatch(r.owner), "owner.login"),
        (isinstance(r.package, str) and len(r.package) <= 200
         and REPOSITORY_PATTERN.fullmatch(r.package.lower()), "name"),
        (isinstance(r.digest, str) and DIGEST_PATTERN.fullmatch(r.digest), "package_version.version (digest)"),
        (isinstance(r.tag, str) and TAG_PATTERN.fullmatch(r.tag), "container_metadata.tag.name"),
        (r.repository is None or (isinstance(r.repository, str) and _REPO.fullmatch(r.repository)), "repository.name"),
        (isinstance(r.delivery_id, str) and _DELIVERY.fullmatch(r.delivery_id), "X-GitHub-Delivery"),
        (r.action in SYNC_ACTIONS, "action"),
        (isinstance(r.organization, bool), "organization"),
    ]
    for ok, field in checks:
        if not ok:
            raise MalformedDelivery(f"registry_package delivery has an unusable {field}")


def _obj(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise MalformedDelivery(f"delivery has no {key!r} object")
    return value


def _str(parent: dict[str, Any], key: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedDelivery(f"delivery has no {key!r} string")
    return value


def _int(parent: dict[str, Any], key: str) -> int:
    value = parent.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedDelivery(f"delivery has no {key!r} number")
    return value

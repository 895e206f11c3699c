"""Webhook deliveries, without I/O: signature check, then event → Job | Ignored | InstallationChange.

Only the few fields needed are read from the raw JSON, after the signature is verified (githubkit's typed
parse empties `container_metadata.manifest` and rejects a null `description`: FACTS.md §1).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from chalicelib.jobs import REVISION, InvalidJob, Job, Package, batches, event_job
from chalicelib.registry.reference import DIGEST_PATTERN

MAX_BODY_BYTES = 5 * 1024 * 1024  # GitHub caps payloads at 25 MB; ours are a few KB, installation lists more
SIGNATURE_PREFIX = "sha256="
SYNC_ACTIONS = frozenset({"published", "updated"})
# Installation events that bring repositories whose existing images are backfilled.
BACKFILL_ACTIONS = frozenset({"installation.created", "installation_repositories.added"})
MAX_REPOSITORIES = 5000  # per delivery: 100 jobs of 50 packages; an installation's list is bounded by the body cap


class MalformedDelivery(InvalidJob):
    """A signed delivery lacks a field we need, or holds one we cannot use (HTTP 400)."""


@dataclass(frozen=True)
class Ignored:
    """A valid delivery with nothing to do, and why."""

    reason: str
    account_login: str | None = None
    account_id: int | None = None


@dataclass(frozen=True)
class InstallationChange:
    """An installation lifecycle event; `repositories` names those it brings (created, repositories added)."""

    action: str
    installation_id: int
    account_login: str
    account_id: int
    organization: bool = False
    repositories: tuple[str, ...] = ()
    backfill: tuple[Job, ...] = ()  # the jobs that mirror what those repositories' packages already hold


Decision = Job | Ignored | InstallationChange


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
        return _installation(event, delivery_id, payload)
    if event != "registry_package":
        return Ignored(f"event {event[:64]!r} is not handled")
    return _registry_package(delivery_id, payload)


def _installation(event: str, delivery_id: str, payload: dict[str, Any]) -> InstallationChange:
    inst = _obj(payload, "installation")
    account = _obj(inst, "account")
    action = f"{event}.{_str(payload, 'action')}"
    listed = payload.get("repositories_added" if event == "installation_repositories" else "repositories")
    names: list[str] = []
    if action in BACKFILL_ACTIONS and isinstance(listed, list):
        if len(listed) > MAX_REPOSITORIES:
            raise MalformedDelivery(f"delivery lists over {MAX_REPOSITORIES} repositories")
        names = [r["name"] for r in listed if isinstance(r, dict) and isinstance(r.get("name"), str)]
    login, account_id = _str(account, "login"), _int(account, "id")
    organization = account.get("type") == "Organization" or inst.get("target_type") == "Organization"
    installation_id = _int(inst, "id")
    repositories = tuple(dict.fromkeys(names))
    # Each repository's package is looked up under the repository's own name (docker/metadata-action's default
    # image name): GitHub's packages listing refuses App installation tokens (FACTS.md §11), so there is no
    # complete list to read. Packages of other names arrive with their next push, or with reconcile.
    packages = [Package(login, account_id, name, name, organization) for name in repositories]
    try:
        jobs = batches(installation_id, packages, "backfill", delivery_id)
    except InvalidJob as exc:
        raise MalformedDelivery(f"{event} delivery: {exc}") from None
    return InstallationChange(action, installation_id, login, account_id, organization, repositories, tuple(jobs))


def _registry_package(delivery_id: str, payload: dict[str, Any]) -> Decision:
    package = _obj(payload, "registry_package")
    owner = _obj(package, "owner")
    login, owner_id = _str(owner, "login"), _int(owner, "id")
    action = _str(payload, "action")
    package_type = str(package.get("package_type") or "")
    if action not in SYNC_ACTIONS:
        return Ignored(f"action {action[:32]!r} is not a publication", login, owner_id)
    if not _container_image(package):
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
    subject = Package(
        owner=login, owner_id=owner_id, name=_str(package, "name"),
        repository=repo_name if isinstance(repo_name, str) else None,
        organization=owner.get("type") == "Organization" or isinstance(payload.get("organization"), dict),
    )
    try:
        return event_job(_int(_obj(payload, "installation"), "id"), subject, digest if isinstance(digest, str) else "",
                         tag if isinstance(tag, str) else "", delivery_id, _revision(metadata))
    except InvalidJob as exc:
        problem = str(exc).removeprefix("job has ").removeprefix("a package with ")
        raise MalformedDelivery(f"registry_package delivery has {problem}") from None


def _container_image(package: dict[str, Any]) -> bool:
    """Tell whether a `registry_package` is a container image on GHCR, from every field that can say so.

    GHCR sends "CONTAINER" in package_type, ecosystem and registry.type (older docs: "container"); GitHub's
    own published example (octokit/webhooks payload-examples, published.docker.payload.json) says package_type
    "npm", ecosystem "docker", registry.type "CONTAINER", package_url on ghcr.io. "docker" alone is also the
    legacy docker.pkg.github.com, so it counts only with a package_url on ghcr.io (FACTS.md §1).
    """
    registry = package.get("registry")
    fields = (package.get("package_type"), package.get("ecosystem"),
              registry.get("type") if isinstance(registry, dict) else None)
    kinds = {value.lower() for value in fields if isinstance(value, str)}
    if "container" in kinds:
        return True
    version = package.get("package_version")
    url = version.get("package_url") if isinstance(version, dict) else None
    return "docker" in kinds and isinstance(url, str) and url.lower().startswith("ghcr.io/")


def _revision(metadata: Any) -> str | None:
    """Return the image's commit from its labels (docker/metadata-action sets it), or None when unusable.

    The delivery carries `labels.revision`; some carry `all_labels["org.opencontainers.image.revision"]` too.
    A label is the tenant's text: anything but a commit id is dropped, never refused.
    """
    if not isinstance(metadata, dict):
        return None
    for key, name in (("labels", "revision"), ("all_labels", "org.opencontainers.image.revision")):
        labels = metadata.get(key)
        value = labels.get(name) if isinstance(labels, dict) else None
        if isinstance(value, str) and REVISION.fullmatch(value.strip().lower()):
            return value.strip().lower()
    return None


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

"""Signed GitHub `registry_package` deliveries shaped like real ones (FACTS.md §1), for the demo and benchmarks."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from chalicelib.webhook.events import sign


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery: the headers GitHub sends and the exact body bytes it signs."""

    event: str
    delivery_id: str
    body: bytes
    headers: dict[str, str]


def registry_package_payload(owner: str, owner_id: int, package: str, digest: str, tag: str, *,
                             installation_id: int, repository: str | None = None,
                             action: str = "published", package_type: str = "CONTAINER",
                             revision: str = "") -> dict[str, Any]:
    """Return a `registry_package` payload: one manifest version, tagged or not (tag "" for platform manifests);
    `revision` is the image's `org.opencontainers.image.revision` label (docker/metadata-action sets it)."""
    url_tag = f":{tag}" if tag else ":"  # GitHub sends a bare trailing ':' for untagged versions
    payload: dict[str, Any] = {
        "action": action,
        "registry_package": {
            "id": 4_200_000 + len(package), "name": package, "namespace": owner, "description": None,
            "ecosystem": "CONTAINER", "package_type": package_type, "html_url": f"https://github.com/{owner}/{package}",
            "created_at": "2026-11-24T12:00:00Z", "updated_at": "2026-11-24T12:00:00Z",
            "owner": {"login": owner, "id": owner_id, "type": "Organization"},
            "package_version": {
                "id": int(digest[7:15], 16), "version": digest, "name": digest, "description": "",
                "package_url": f"ghcr.io/{owner.lower()}/{package.lower()}{url_tag}",
                "container_metadata": {"tag": {"name": tag, "digest": digest if tag else ""},
                                       "labels": {"description": "", "source": "", "revision": revision},
                                       "manifest": {"digest": digest, "media_type": "", "uri": "", "size": 0,
                                                    "config": {}, "layers": []}},
            },
            "registry": {"about_url": "https://docs.github.com/packages", "name": "GitHub CONTAINER registry",
                         "type": "CONTAINER", "url": f"https://CONTAINER.pkg.github.com/{owner}",
                         "vendor": "GitHub Inc"},
        },
        "organization": {"login": owner, "id": owner_id},
        "sender": {"login": "release-bot", "id": 99, "type": "Bot"},
        "installation": {"id": installation_id, "node_id": f"MDIz{installation_id}"},
    }
    if repository is not None:
        payload["repository"] = {"id": 7_700_000 + len(repository), "name": repository,
                                 "full_name": f"{owner}/{repository}", "private": True,
                                 "owner": {"login": owner, "id": owner_id}}
    return payload


def signed(event: str, payload: dict[str, Any], secret: bytes, *, app_id: int | str = 1,
           delivery_id: str | None = None) -> Delivery:
    """Serialize and sign a payload as GitHub does (HMAC-SHA256 over the raw body)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    delivery_id = delivery_id or str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/standin",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id,
        "X-GitHub-Hook-Installation-Target-Type": "integration",
        "X-GitHub-Hook-Installation-Target-ID": str(app_id),
        "X-Hub-Signature-256": sign(secret, body),
    }
    return Delivery(event, delivery_id, body, headers)


def multi_platform_burst(owner: str, owner_id: int, package: str, index_digest: str, child_digests: list[str],
                         tag: str, secret: bytes, *, installation_id: int, repository: str | None = None,
                         app_id: int | str = 1, revision: str = "") -> list[Delivery]:
    """Return what one multi-platform push sends: an untagged event per platform, then the tagged index."""
    deliveries = [
        signed("registry_package", registry_package_payload(owner, owner_id, package, child, "",
                                                            installation_id=installation_id,
                                                            repository=repository, revision=revision),
               secret, app_id=app_id)
        for child in child_digests
    ]
    deliveries.append(signed("registry_package", registry_package_payload(
        owner, owner_id, package, index_digest, tag, installation_id=installation_id, repository=repository,
        revision=revision), secret, app_id=app_id))
    return deliveries

"""What a container image is: every field GitHub uses to say so, GitHub's own published example included."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.support.app_fixtures import AppEnv, clear_caches, load_delivery, post

OCTOKIT = "published-octokit-docker-example"  # octokit/webhooks' published.docker.payload.json, tagged


def test_githubs_published_container_example_is_queued(client, app_env: AppEnv, monkeypatch) -> None:
    from chalicelib import aws

    monkeypatch.setenv("ALLOWED_ACCOUNTS", "codertocat")
    clear_caches()
    aws.use(aws.Sqs, app_env.sqs)
    response = post(client, load_delivery(OCTOKIT))
    assert response.status_code == 202, response.body
    assert json.loads(response.body)["status"] == "queued" and len(app_env.sqs.sent) == 1


def kinds(payload: dict[str, Any], package_type: str, ecosystem: str | None, registry: str | None,
          url: str | None) -> dict[str, Any]:
    """Return a copy of a delivery with the fields that can say what the package is."""
    payload = copy.deepcopy(payload)
    package = payload["registry_package"]
    package["package_type"] = package_type
    for key, value in (("ecosystem", ecosystem),):
        if value is None:
            package.pop(key, None)
        else:
            package[key] = value
    if registry is None:
        package.pop("registry", None)
    else:
        package["registry"]["type"] = registry
    if url is None:
        package["package_version"].pop("package_url", None)
    else:
        package["package_version"]["package_url"] = url
    return payload


@pytest.mark.parametrize(("package_type", "ecosystem", "registry", "url", "queued"), [
    ("CONTAINER", "CONTAINER", "CONTAINER", "ghcr.io/octo-org/app:v1", True),  # what GHCR sends
    ("container", None, None, None, True),  # older docs
    ("npm", "docker", "CONTAINER", "ghcr.io/Codertocat/hello-world:", True),  # GitHub's published example
    ("npm", "docker", None, "ghcr.io/octo-org/app:v1", True),  # "docker" on ghcr.io is GHCR
    ("docker", "docker", "docker", "docker.pkg.github.com/octo-org/app/app:v1", False),  # the legacy registry
    ("docker", None, None, None, False),  # "docker" with nothing placing it on ghcr.io
    ("npm", "npm", "npm", "https://npm.pkg.github.com/@octo-org/app", False),
    ("maven", "maven", "maven", None, False),
])
def test_a_container_image_is_told_by_any_field_that_says_so(client, app_env: AppEnv, package_type: str,
        ecosystem: str | None, registry: str | None, url: str | None, queued: bool) -> None:
    delivery = load_delivery("multiplatform-tagged-index")
    response = post(client, delivery.with_payload(kinds(delivery.payload, package_type, ecosystem, registry, url)))
    answer = json.loads(response.body)
    if queued:
        assert (response.status_code, answer["status"]) == (202, "queued")
    else:
        assert (response.status_code, answer["status"]) == (200, "ignored")
        assert answer["reason"].endswith("package: only container images are mirrored")

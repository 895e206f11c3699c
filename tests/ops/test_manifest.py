"""manifest.yml: the GitHub App manifest (FACTS.md §5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from chalicelib.ops.create_app import prepare_manifest

MANIFEST: dict[str, Any] = yaml.safe_load((Path(__file__).resolve().parents[2] / "manifest.yml").read_text())
# The keys GitHub's manifest flow accepts (docs.github.com: registering a GitHub App from a manifest).
MANIFEST_KEYS = {"name", "url", "hook_attributes", "redirect_url", "callback_urls", "setup_url", "description",
                 "public", "default_events", "default_permissions", "request_oauth_on_install",
                 "setup_on_update"}


def test_manifest_subscribes_only_to_registry_package() -> None:
    assert MANIFEST["default_events"] == ["registry_package"]


def test_installation_events_are_not_listed_because_every_app_gets_them() -> None:
    assert not [event for event in MANIFEST["default_events"] if event.startswith("installation")]


def test_manifest_asks_for_four_reads_and_the_two_writes_that_tell_the_tenant() -> None:
    assert MANIFEST["default_permissions"] == {
        "packages": "read",
        "metadata": "read",
        "actions_variables": "read",
        "organization_actions_variables": "read",
        "checks": "write",  # the ghcr2ecr check run
        "artifact_metadata": "write",  # storage records
    }


def test_app_is_private_by_default() -> None:
    assert MANIFEST["public"] is False


def test_manifest_uses_only_keys_github_accepts() -> None:
    assert set(MANIFEST) <= MANIFEST_KEYS
    assert MANIFEST["name"] and MANIFEST["description"]
    assert set(MANIFEST["hook_attributes"]) <= {"url", "active"}


def test_known_webhook_url_is_filled_in_and_active() -> None:
    prepared = prepare_manifest(MANIFEST, github_url="https://github.com", org="octo-org",
                                webhook_url="https://abc.execute-api.eu-west-1.amazonaws.com/api/github/webhook")
    assert prepared["hook_attributes"] == {
        "url": "https://abc.execute-api.eu-west-1.amazonaws.com/api/github/webhook", "active": True,
    }
    assert prepared["url"] == "https://github.com/octo-org"
    assert prepared["name"] == "ghcr2ecr-octo-org"


def test_without_a_deployment_the_webhook_starts_inactive() -> None:
    prepared = prepare_manifest(MANIFEST, github_url="https://github.com", org=None, webhook_url=None)
    assert prepared["hook_attributes"]["active"] is False
    assert prepared["hook_attributes"]["url"].startswith("https://")
    assert prepared["url"] == "https://github.com"
    assert prepared["name"] == MANIFEST["name"]


def test_app_name_for_a_long_org_fits_githubs_limit() -> None:
    prepared = prepare_manifest(MANIFEST, github_url="https://github.com", org="a-very-long-organization-name-x",
                                webhook_url=None)
    assert len(prepared["name"]) <= 34
    assert not prepared["name"].endswith("-")


def test_preparing_does_not_change_the_loaded_manifest() -> None:
    before = yaml.safe_dump(MANIFEST)
    prepare_manifest(MANIFEST, github_url="https://github.com", org="o", webhook_url="https://x.example/github/webhook")
    assert yaml.safe_dump(MANIFEST) == before

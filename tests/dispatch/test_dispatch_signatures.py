"""Dispatch of cosign pushes: a `sha256-<hex>.sig/.att/.sbom` tag follows its image, not GHCR2ECR_TAGS."""

from __future__ import annotations

import pytest

from tests.support.app_fixtures import AppEnv, dispatch_queued, load_delivery, post

SIGNED = "sha256:" + "5e" * 32  # the image the signature belongs to
SIGNATURE_MANIFEST = "sha256:" + "c0" * 32


def push_tag(client, env: AppEnv, tag: str) -> None:
    """Deliver a tagged push of the fixture package with `tag`, then run dispatch on it."""
    delivery = load_delivery("multiplatform-tagged-index")
    payload = delivery.payload
    version = payload["registry_package"]["package_version"]
    version["version"] = SIGNATURE_MANIFEST
    version["container_metadata"]["tag"] = {"name": tag, "digest": SIGNATURE_MANIFEST}
    assert post(client, delivery.with_payload(payload)).status_code == 202
    dispatch_queued(client, env)


@pytest.mark.parametrize("suffix", ["sig", "att", "sbom"])
def test_a_cosign_tag_is_exempt_from_the_tag_filter(client, app_env: AppEnv, suffix: str) -> None:
    app_env.github.set_repo_variables("octo-org", "app", {"GHCR2ECR_TAGS": "v*,!*-rc*"})
    tag = f"sha256-{SIGNED[7:]}.{suffix}"
    push_tag(client, app_env, tag)
    job = app_env.build_job()
    assert (job.selection.tag, job.selection.digest) == (tag, SIGNATURE_MANIFEST)


def test_signatures_false_skips_a_cosign_push(client, app_env: AppEnv, json_logs) -> None:
    app_env.github.set_repo_variables("octo-org", "app", {"GHCR2ECR_SIGNATURES": "false"})
    push_tag(client, app_env, f"sha256-{SIGNED[7:]}.sig")
    assert app_env.codebuild.calls == [] and app_env.token_parameters() == []
    assert [line["code"] for line in json_logs.find("sync skipped")] == ["signatures_disabled"]
    assert [t.revoked for t in app_env.github.tokens] == [True]


@pytest.mark.parametrize("tag", ["sha256-abc.sig", f"sha256-{SIGNED[7:]}.sigx", f"SHA256-{SIGNED[7:]}.sig"])
def test_a_tag_only_resembling_a_signature_goes_to_the_build_with_the_filter(client, app_env: AppEnv,
                                                                             tag: str) -> None:
    app_env.github.set_repo_variables("octo-org", "app", {"GHCR2ECR_TAGS": "v*"})
    push_tag(client, app_env, tag)
    [target] = app_env.build_job().targets  # the build applies GHCR2ECR_TAGS (tests/build/test_run_job.py)
    assert target.tags == "v*" and target.signatures


def test_a_disabled_installation_skips_signatures_too(client, app_env: AppEnv, json_logs) -> None:
    app_env.github.set_repo_variables("octo-org", "app", {"GHCR2ECR_ENABLED": "false"})
    push_tag(client, app_env, f"sha256-{SIGNED[7:]}.sig")
    assert [line["code"] for line in json_logs.find("sync skipped")] == ["disabled"]

"""Dispatch of jobs of several packages (backfill, reconcile): one token, one build, each package's own settings."""

from __future__ import annotations

import pytest

from chalicelib.jobs import Job, Package, batches
from tests.support.app_fixtures import AppEnv, load_delivery, post


def dispatch(client, job: Job) -> None:
    """Run the dispatch handler on one queued job."""
    client.lambda_.invoke("dispatch", client.events.generate_sqs_event([job.to_json()]))


def octo(*names: str, linked: bool = True) -> list[Package]:
    """Return packages of octo-org (installation 77), linked to repositories of their names."""
    return [Package("octo-org", 1001, name, name if linked else None, True) for name in names]


def test_a_job_of_three_packages_is_one_token_and_one_build(client, app_env: AppEnv) -> None:
    app_env.github.set_repo_variables("octo-org", "api", {"GHCR2ECR_TAGS": "v*"})
    [job] = batches(77, octo("app", "api", "web"), "reconcile", "run-1")
    dispatch(client, job)
    [mint] = [r for r in app_env.github.requests if r.path.endswith("/access_tokens")]
    assert mint.body["repositories"] == ["api", "app", "web"]
    assert len(app_env.codebuild.calls) == 1
    build = app_env.build_job()
    assert [(t.package, t.tags) for t in build.targets] == [("octo-org/app", None), ("octo-org/api", "v*"),
                                                             ("octo-org/web", None)]
    assert build.origin == "reconcile" and build.selection.all_tags


def test_a_disabled_or_misconfigured_package_is_skipped_alone(client, app_env: AppEnv, json_logs) -> None:
    app_env.github.set_repo_variables("octo-org", "api", {"GHCR2ECR_ENABLED": "false"})
    app_env.github.set_repo_variables("octo-org", "web", {"GHCR2ECR_REPOSITORY": "../elsewhere"})
    [job] = batches(77, octo("app", "api", "web"), "backfill", "d-1")
    dispatch(client, job)
    assert [t.package for t in app_env.build_job().targets] == ["octo-org/app"]
    skipped = {line["package_skipped"]: line["code"] for line in json_logs.find("package skipped")}
    assert skipped == {"octo-org/api": "disabled", "octo-org/web": "invalid_config"}


def test_a_job_whose_packages_are_all_disabled_starts_none_and_revokes(client, app_env: AppEnv) -> None:
    for name in ("app", "api"):
        app_env.github.set_repo_variables("octo-org", name, {"GHCR2ECR_ENABLED": "false"})
    [job] = batches(77, octo("app", "api"), "reconcile", "run-1")
    dispatch(client, job)
    assert app_env.codebuild.calls == [] and app_env.token_parameters() == []
    assert [t.revoked for t in app_env.github.tokens] == [True]


def test_unlinked_packages_get_an_unscoped_token_reading_organization_variables(client, app_env: AppEnv) -> None:
    app_env.github.set_org_variable("octo-org", "GHCR2ECR_TAGS", "release-*")
    [job] = batches(77, octo("base", linked=False) + octo("app"), "reconcile", "run-1")
    dispatch(client, job)
    [mint] = [r for r in app_env.github.requests if r.path.endswith("/access_tokens")]
    assert "repositories" not in mint.body
    assert mint.body["permissions"] == {"packages": "read", "metadata": "read", "actions_variables": "read",
                                        "organization_actions_variables": "read"}
    assert [t.tags for t in app_env.build_job().targets] == ["release-*", "release-*"]


@pytest.mark.parametrize("change", ["remove", "suspend"])
def test_a_backfill_for_an_installation_gone_or_suspended_starts_nothing(client, app_env: AppEnv, json_logs,
                                                                         change: str) -> None:
    assert post(client, load_delivery("installation-created")).status_code == 202
    [message] = app_env.receive()
    getattr(app_env.github, f"{change}_installation")(77)
    client.lambda_.invoke("dispatch", client.events.generate_sqs_event([message["Body"]]))
    assert app_env.codebuild.calls == []
    [line] = json_logs.find("sync not started")
    assert line["code"] in ("installation_gone", "installation_suspended") and line["origin"] == "backfill"


def test_the_backfill_of_an_installation_event_reaches_the_build(client, app_env: AppEnv) -> None:
    delivery = load_delivery("installation-repositories-added")
    assert post(client, delivery).status_code == 202
    [message] = app_env.receive()
    client.lambda_.invoke("dispatch", client.events.generate_sqs_event([message["Body"]]))
    build = app_env.build_job()
    assert (build.origin, build.correlation_id) == ("backfill", delivery.delivery)
    assert [(t.source, t.repository) for t in build.targets] == [("ghcr.io/octo-org/tools", "tools")]

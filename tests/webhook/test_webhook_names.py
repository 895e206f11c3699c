"""Names in deliveries: GitHub's login and repository grammars, as the webhook accepts or refuses them."""

from __future__ import annotations

import pytest

from chalicelib.names import destination
from chalicelib.jobs import Job
from tests.support.app_fixtures import AppEnv, load_delivery, post


def deliver(client, *, login: str | None = None, repository: str | None = None) -> int:
    """POST the tagged index fixture with another owner login or linked repository name; return the status."""
    delivery = load_delivery("multiplatform-tagged-index")
    payload = delivery.payload
    if login is not None:  # under an allowed account id: ALLOWED_ACCOUNTS lists 1002
        payload["registry_package"]["owner"].update(login=login, id=1002)
    if repository is not None:
        payload["repository"]["name"] = repository
    return post(client, delivery.with_payload(payload)).status_code


@pytest.mark.parametrize("name", [".", ".."])
def test_repository_names_dot_and_dot_dot_are_refused(client, app_env: AppEnv, name: str) -> None:
    assert deliver(client, repository=name) == 400
    assert app_env.sqs.sent == []


@pytest.mark.parametrize("name", [".github", "...", "a..b", "my_repo.v2"])
def test_other_repository_names_with_dots_are_accepted(client, app_env: AppEnv, name: str) -> None:
    assert deliver(client, repository=name) == 202
    assert Job.from_json(app_env.sqs.sent[0]["body"]).package.repository == name


@pytest.mark.parametrize("login", ["Octo-Cat_acme", "2abvd19d_admin"])  # `<handle>_<enterprise shortcode>`
def test_enterprise_managed_user_logins_are_accepted(client, app_env: AppEnv, login: str) -> None:
    assert deliver(client, login=login) == 202
    package = Job.from_json(app_env.sqs.sent[0]["body"]).package
    assert package.owner == login and package.path == f"{login.lower()}/app"
    assert destination("ghcr", package.owner, package.name) == f"ghcr/{login.lower()}/app"


@pytest.mark.parametrize("login", ["_octo", "octo_", "octo__acme", "octo_ac-me", "octo.cat", "-octo"])
def test_logins_outside_githubs_grammar_are_refused(client, app_env: AppEnv, login: str) -> None:
    assert deliver(client, login=login) == 400


def test_the_webhook_checks_digests_tags_and_names_with_the_engines_grammar() -> None:
    from chalicelib import jobs
    from chalicelib.registry import reference

    # One grammar: a job the webhook queues is one `ghcr2ecr sync` accepts, and the two cannot drift apart.
    assert jobs.DIGEST_PATTERN is reference.DIGEST_PATTERN
    assert jobs.TAG_PATTERN is reference.TAG_PATTERN
    assert jobs.REPOSITORY_PATTERN is reference.REPOSITORY_PATTERN

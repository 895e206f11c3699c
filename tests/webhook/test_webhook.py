"""The webhook route: signed deliveries in, HTTP contract out, and what lands on the FIFO queue."""

from __future__ import annotations

import json

import pytest

from chalicelib.jobs import Job
from chalicelib.webhook.events import MAX_BODY_BYTES, sign, signature_valid
from tests.support.app_fixtures import WEBHOOK_SECRET, AppEnv, load_delivery, post

INDEX = "multiplatform-tagged-index"


def queued(env: AppEnv) -> list[Job]:
    """Return the sync requests on the queue (and remove them)."""
    return [Job.from_json(m["Body"]) for m in env.receive()]


def test_github_documented_signature_vector_verifies() -> None:
    secret, body = b"It's a Secret to Everybody", b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign(secret, body) == expected
    assert signature_valid(secret, body, expected)
    assert not signature_valid(secret, body, expected[:-1] + "f")
    assert not signature_valid(secret, body, "sha1=" + expected[7:])
    assert not signature_valid(secret, body, None)


def test_a_multi_platform_burst_queues_only_the_tagged_index(client, app_env: AppEnv) -> None:
    for name in ("multiplatform-untagged-amd64", "multiplatform-untagged-arm64", "multiplatform-untagged-attestation"):
        response = post(client, load_delivery(name))
        assert response.status_code == 200
        assert json.loads(response.body)["status"] == "ignored"
        assert "untagged" in json.loads(response.body)["reason"]
    response = post(client, load_delivery(INDEX))
    assert response.status_code == 202
    assert json.loads(response.body)["status"] == "queued"
    [request] = queued(app_env)
    index = load_delivery(INDEX).payload["registry_package"]["package_version"]["version"]
    package = request.package
    assert (package.source("ghcr.io"), request.selection.digest, request.selection.tag) == (
        "ghcr.io/octo-org/app", index, "v1.2.3")
    assert package.repository == "app" and request.installation_id == 77 and package.organization
    assert (request.origin, request.correlation_id) == ("webhook", load_delivery(INDEX).delivery)


def test_a_manual_redelivery_is_accepted_but_queued_once(client, app_env: AppEnv) -> None:
    delivery = load_delivery(INDEX)
    assert post(client, delivery).status_code == 202
    assert post(client, delivery).status_code == 202  # same X-GitHub-Delivery, as GitHub's "Redeliver" sends
    assert len(app_env.sqs.sent) == 2
    assert app_env.sqs.sent[0]["dedup_id"] == app_env.sqs.sent[1]["dedup_id"]
    assert len(queued(app_env)) == 1  # FIFO deduplication collapsed it


def test_published_and_updated_are_both_synced_with_distinct_deduplication(client, app_env: AppEnv) -> None:
    assert post(client, load_delivery(INDEX)).status_code == 202
    assert post(client, load_delivery("updated-linked")).status_code == 202
    requests = queued(app_env)
    assert sorted((r.selection.tag for r in requests), key=str) == ["latest", "v1.2.3"]
    assert len({r.dedup_id for r in requests}) == 2
    assert len({r.group_id for r in requests}) == 1  # one package, one message group


def test_a_package_without_linked_repository_is_queued_without_repository(client, app_env: AppEnv) -> None:
    assert post(client, load_delivery("published-no-repository")).status_code == 202
    [request] = queued(app_env)
    assert request.package.repository is None and request.package.name == "base-images"
    assert request.package.organization


def test_an_upper_case_login_and_name_become_a_lower_case_source(client, app_env: AppEnv) -> None:
    response = post(client, load_delivery("published-uppercase-login"))
    assert response.status_code == 202
    assert json.loads(response.body)["source"] == "ghcr.io/mixed-case-org/service-api"
    [request] = queued(app_env)
    assert request.package.owner == "Mixed-Case-Org"  # kept as GitHub spells it; lower-cased where used


def test_a_nested_package_name_is_kept(client, app_env: AppEnv) -> None:
    response = post(client, load_delivery("published-nested-name"))
    assert response.status_code == 202
    assert json.loads(response.body)["source"] == "ghcr.io/octo-org/tools/builder"


def test_a_user_package_with_trailing_colon_url_is_queued(client, app_env: AppEnv) -> None:
    delivery = load_delivery("published-user-package")
    payload = delivery.payload
    payload["registry_package"]["package_version"]["package_url"] = "ghcr.io/jane-dev/dotfiles:"
    assert post(client, delivery.with_payload(payload)).status_code == 202
    [request] = queued(app_env)
    assert request.package.path == "jane-dev/dotfiles" and not request.package.organization


def test_an_npm_package_is_ignored(client, app_env: AppEnv) -> None:
    response = post(client, load_delivery("published-npm"))
    assert response.status_code == 200
    assert "npm" in json.loads(response.body)["reason"]
    assert app_env.sqs.sent == []


def test_package_type_is_compared_case_insensitively(client, app_env: AppEnv) -> None:
    delivery = load_delivery(INDEX)
    payload = delivery.payload
    payload["registry_package"]["package_type"] = "container"
    assert post(client, delivery.with_payload(payload)).status_code == 202


def test_ping_is_ignored(client, app_env: AppEnv) -> None:
    response = post(client, load_delivery("ping"))
    assert (response.status_code, json.loads(response.body)) == (200, {"status": "ignored", "reason": "ping"})


def test_an_unknown_event_is_ignored(client, app_env: AppEnv) -> None:
    delivery = load_delivery("ping")
    response = post(client, delivery, delivery.headers(**{"X-GitHub-Event": "star"}))
    assert response.status_code == 200 and json.loads(response.body)["status"] == "ignored"


@pytest.mark.parametrize("name", ["installation-suspend", "installation-deleted"])
def test_installation_lifecycle_events_are_acknowledged(client, app_env: AppEnv, name: str) -> None:
    response = post(client, load_delivery(name))
    assert response.status_code == 200
    body = json.loads(response.body)
    assert body["status"] == "ignored" and "installation" in body["reason"]
    assert app_env.sqs.sent == []


@pytest.mark.parametrize("name,repository", [("installation-created", "app"),
                                             ("installation-repositories-added", "tools")])
def test_an_installation_bringing_repositories_queues_their_backfill(client, app_env: AppEnv, name: str,
                                                                     repository: str) -> None:
    delivery = load_delivery(name)
    response = post(client, delivery)
    assert response.status_code == 202
    body = json.loads(response.body)
    assert body["status"] == "queued" and body["jobs"] == 1 and "backfill" in body["reason"]
    [job] = queued(app_env)
    assert (job.origin, job.correlation_id, job.installation_id, job.selection.all_tags) == (
        "backfill", delivery.delivery, 77, True)
    # the package is looked up under the repository's own name, linked to that repository
    assert [(p.owner, p.owner_id, p.name, p.repository, p.organization) for p in job.packages] == [
        ("octo-org", 1001, repository, repository, True)]


def test_a_backfill_of_2000_repositories_is_40_jobs_not_2000(client, app_env: AppEnv) -> None:
    delivery = load_delivery("installation-created")
    payload = delivery.payload
    payload["repositories"] = [{"id": i, "name": f"repo-{i}", "full_name": f"octo-org/repo-{i}", "private": True}
                               for i in range(2000)]
    assert post(client, delivery.with_payload(payload)).status_code == 202
    jobs = queued(app_env)
    assert len(jobs) == 40 and {len(j.packages) for j in jobs} == {50}
    assert len({p.name for j in jobs for p in j.packages}) == 2000
    assert len({j.dedup_id for j in jobs}) == 40


def test_a_redelivered_installation_event_queues_its_backfill_once(client, app_env: AppEnv) -> None:
    delivery = load_delivery("installation-created")
    assert post(client, delivery).status_code == 202
    assert post(client, delivery).status_code == 202
    assert len(queued(app_env)) == 1  # same delivery GUID: the same dedup ids


def test_a_disallowed_account_gets_403_and_nothing_is_queued(client, app_env: AppEnv) -> None:
    assert post(client, load_delivery("published-disallowed-account")).status_code == 403
    delivery = load_delivery("installation-created")
    payload = delivery.payload
    payload["installation"]["account"] = {"login": "evil-corp", "id": 6666, "type": "Organization"}
    assert post(client, delivery.with_payload(payload)).status_code == 403
    assert app_env.sqs.sent == []


def test_an_empty_allow_list_allows_nobody_and_star_allows_everybody(client, app_env: AppEnv, monkeypatch) -> None:
    from tests.support.app_fixtures import clear_caches

    monkeypatch.setenv("ALLOWED_ACCOUNTS", "")
    clear_caches()
    assert post(client, load_delivery(INDEX)).status_code == 403
    monkeypatch.setenv("ALLOWED_ACCOUNTS", "*")
    clear_caches()
    from chalicelib import aws

    aws.use(aws.Sqs, app_env.sqs)
    assert post(client, load_delivery("published-disallowed-account")).status_code == 202


def test_a_wrong_signature_is_401_and_nothing_is_queued(client, app_env: AppEnv) -> None:
    delivery = load_delivery(INDEX)
    assert post(client, delivery, delivery.headers(secret="not the secret")).status_code == 401
    tampered = delivery.headers()
    assert client.http.post("/github/webhook", headers=tampered, body=delivery.body + b" ").status_code == 401
    assert app_env.sqs.sent == []


def test_a_missing_signature_is_401(client, app_env: AppEnv) -> None:
    delivery = load_delivery(INDEX)
    headers = {k: v for k, v in delivery.headers().items() if k != "X-Hub-Signature-256"}
    assert post(client, delivery, headers).status_code == 401
    assert app_env.sqs.sent == []


def test_signed_malformed_json_is_400(client, app_env: AppEnv) -> None:
    body = b'{"action": "published", "registry_package": '
    headers = load_delivery(INDEX).headers()
    headers["X-Hub-Signature-256"] = sign(WEBHOOK_SECRET.encode(), body)
    assert client.http.post("/github/webhook", headers=headers, body=body).status_code == 400


def test_a_signed_package_event_missing_fields_is_400(client, app_env: AppEnv) -> None:
    delivery = load_delivery(INDEX)
    payload = delivery.payload
    del payload["installation"]
    assert post(client, delivery.with_payload(payload)).status_code == 400
    payload = delivery.payload
    payload["registry_package"]["package_version"]["version"] = "not-a-digest"
    payload["registry_package"]["package_version"]["container_metadata"]["tag"]["digest"] = ""
    assert post(client, delivery.with_payload(payload)).status_code == 400
    assert app_env.sqs.sent == []


def test_missing_event_headers_are_400(client, app_env: AppEnv) -> None:
    delivery = load_delivery(INDEX)
    headers = {k: v for k, v in delivery.headers().items() if k != "X-GitHub-Event"}
    assert post(client, delivery, headers).status_code == 400


def test_an_oversized_body_is_413(client, app_env: AppEnv) -> None:
    body = b'{"pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    headers = load_delivery(INDEX).headers()
    headers["X-Hub-Signature-256"] = sign(WEBHOOK_SECRET.encode(), body)
    assert client.http.post("/github/webhook", headers=headers, body=body).status_code == 413


def test_a_queue_failure_is_503_so_github_shows_a_failed_delivery(client, app_env: AppEnv) -> None:
    app_env.sqs.fail = True
    response = post(client, load_delivery(INDEX))
    assert response.status_code == 503
    assert json.loads(response.body)["status"] == "error"


def test_the_queue_message_holds_ids_and_names_only(client, app_env: AppEnv) -> None:
    assert post(client, load_delivery(INDEX)).status_code == 202
    [message] = app_env.receive()
    body = json.loads(message["Body"])
    assert set(body) == {"installation_id", "packages", "selection", "origin", "correlation_id"}
    assert set(body["packages"][0]) == {"owner", "owner_id", "name", "repository", "organization"}
    assert set(body["selection"]) == {"digest", "tag", "revision"}
    assert message["Attributes"]["MessageGroupId"] == "77/octo-org/app"


@pytest.mark.parametrize("name", sorted(p.stem for p in __import__("tests.support.app_fixtures", fromlist=["x"])
                                        .DELIVERIES.glob("*.json")))
def test_fixture_deliveries_are_shaped_like_real_ones(name: str) -> None:
    from githubkit import webhooks

    delivery = load_delivery(name)
    webhooks.parse(delivery.event, delivery.body)  # GitHub's published webhook schema, via githubkit's models


def test_absurdly_deep_json_is_400_not_a_crash(client, app_env: AppEnv) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    headers = load_delivery("ping").headers()
    headers["X-Hub-Signature-256"] = sign(WEBHOOK_SECRET.encode(), body)
    assert client.http.post("/github/webhook", headers=headers, body=body).status_code == 400


def test_a_json_content_type_with_charset_is_accepted(client, app_env: AppEnv) -> None:
    delivery = load_delivery(INDEX)
    headers = delivery.headers(**{"Content-Type": "application/json; charset=utf-8"})
    assert post(client, delivery, headers).status_code == 202

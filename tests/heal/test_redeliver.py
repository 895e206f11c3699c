"""`redeliver_failed`: the deliveries we failed (5xx, no answer) are redelivered; those refused on purpose never."""

from __future__ import annotations

import json

import pytest

from chalicelib.heal import redeliver
from chalicelib.config import settings
from tests.support.app_fixtures import AppEnv



def run(client) -> None:
    """Invoke the scheduled handler as EventBridge does."""
    client.lambda_.invoke("redeliver_failed", client.events.generate_cw_event(
        "aws.events", "Scheduled Event", {}, ["arn:aws:events:us-east-1:123456789012:rule/redeliver"]))


def posted(env: AppEnv) -> list[int]:
    """Return the delivery ids whose redelivery the handler asked for."""
    return list(env.github.hooks.attempts)


def state(env: AppEnv) -> dict:
    """Return the handler's saved state."""
    return json.loads(env.boto("ssm").get_parameter(Name=settings().redelivery_state_parameter)["Parameter"]["Value"])


@pytest.mark.parametrize("status_code,status,again", [
    (503, "Service Unavailable", True), (500, "Internal Server Error", True), (502, "Bad Gateway", True),
    (0, "timed out", True), (0, "failed to connect to host", True), (429, "Too Many Requests", True),
    (400, "Bad Request", False), (401, "Unauthorized", False), (403, "Forbidden", False),
    (413, "Payload Too Large", False), (404, "Not Found", False),
])
def test_a_failure_is_redelivered_only_when_it_was_ours_to_fix(client, app_env: AppEnv, status_code: int,
                                                              status: str, again: bool) -> None:
    failed = app_env.github.hooks.record("guid-1", status_code=status_code, status=status)
    run(client)
    assert posted(app_env) == ([failed.id] if again else [])


def test_no_status_code_at_all_is_no_answer(client, app_env: AppEnv) -> None:
    # GitHub does not document what it records when nothing answered: status and status_code decide together.
    failed = app_env.github.hooks.record("guid-1", status_code=0, status="Invalid HTTP Response")
    app_env.github.hooks.items[-1].status_code = None  # type: ignore[assignment]
    run(client)
    assert posted(app_env) == [failed.id]


def test_a_guid_with_a_successful_attempt_is_not_redelivered(client, app_env: AppEnv) -> None:
    hooks = app_env.github.hooks
    hooks.record("guid-ok", status_code=503, delivered_at=hooks.clock() - 60)
    hooks.record("guid-ok", status_code=202, redelivery=True, delivered_at=hooks.clock() - 30)  # a manual redelivery
    hooks.record("guid-fine", status_code=202, delivered_at=hooks.clock() - 20)
    run(client)
    assert posted(app_env) == []


def test_the_latest_failed_attempt_of_a_guid_is_the_one_redelivered_once(client, app_env: AppEnv) -> None:
    hooks = app_env.github.hooks
    hooks.record("guid-1", status_code=503, delivered_at=hooks.clock() - 90)
    latest = hooks.record("guid-1", status_code=0, status="timed out", redelivery=True, delivered_at=hooks.clock() - 30)
    run(client)
    assert posted(app_env) == [latest.id]


def test_deliveries_are_listed_by_cursor_pages_of_100(client, app_env: AppEnv) -> None:
    hooks = app_env.github.hooks
    for number in range(250):
        hooks.record(f"guid-{number}", status_code=202 if number % 50 else 503,
                     delivered_at=hooks.clock() - 1000 + number)
    run(client)
    pages = [r for r in app_env.github.requests if r.path == "/app/hook/deliveries"]
    assert len(pages) == 3 and pages[0].query == {"per_page": ["100"]} and "cursor" in pages[1].query
    assert all(r.auth == "jwt" for r in app_env.github.requests)  # the App key only, never an installation token
    assert app_env.github.tokens == []
    assert sorted(posted(app_env)) == sorted(d.id for d in hooks.items if d.status_code == 503)


def test_a_guid_that_keeps_failing_is_redelivered_a_bounded_number_of_times(client, app_env: AppEnv,
                                                                           json_logs) -> None:
    hooks = app_env.github.hooks
    hooks.record("guid-1", status_code=503)
    for _ in range(redeliver.MAX_ATTEMPTS + 2):
        run(client)
        hooks.perform(lambda headers, body: 503)  # GitHub redelivers; still failing
    assert len(hooks.attempts_done) == redeliver.MAX_ATTEMPTS
    assert len(json_logs.find("delivery redelivered")) == redeliver.MAX_ATTEMPTS


def test_a_delivery_older_than_retention_is_not_tried(client, app_env: AppEnv, monkeypatch) -> None:
    hooks = app_env.github.hooks
    hooks.record("guid-old", status_code=503, delivered_at=hooks.clock() - redeliver.RETENTION + 600)
    run(client)
    assert posted(app_env) == []


def test_the_next_run_reads_only_what_is_new(client, app_env: AppEnv) -> None:
    hooks = app_env.github.hooks
    for number in range(150):
        hooks.record(f"guid-{number}", status_code=202, delivered_at=hooks.clock() - 3000 + number)
    run(client)
    first_pages = len([r for r in app_env.github.requests if r.path == "/app/hook/deliveries"])
    app_env.github.clear_requests()
    run(client)
    assert first_pages == 2 and len([r for r in app_env.github.requests if r.path == "/app/hook/deliveries"]) == 1
    assert state(app_env)["since"] > hooks.clock() - 60


def test_a_run_redelivers_at_most_its_bound_and_leaves_the_rest_for_the_next(client, app_env: AppEnv,
                                                                             monkeypatch) -> None:
    monkeypatch.setattr(redeliver, "MAX_PER_RUN", 5)  # 100 in production: the same code, fewer requests here
    hooks = app_env.github.hooks
    total = redeliver.MAX_PER_RUN + 3
    for number in range(total):
        hooks.record(f"guid-{number}", status_code=503, delivered_at=hooks.clock() - 3000 + number)
    run(client)
    assert len(posted(app_env)) == redeliver.MAX_PER_RUN
    hooks.perform(lambda headers, body: 202)  # they succeed now
    run(client)
    assert len(hooks.attempts) == 3 and len(set(hooks.attempts_done + hooks.attempts)) == total


def test_a_link_to_another_host_is_not_followed(client, app_env: AppEnv, monkeypatch) -> None:
    from standins import github_hooks

    hooks = app_env.github.hooks
    for number in range(120):
        hooks.record(f"guid-{number}", status_code=202, delivered_at=hooks.clock() - 3000 + number)
    original = github_hooks.HookDeliveries.list

    def elsewhere(self, query, url):
        status, body, headers = original(self, query, url)
        if "Link" in headers:
            headers["Link"] = headers["Link"].replace("http://127.0.0.1", "http://127.0.0.2")
        return status, body, headers

    monkeypatch.setattr(github_hooks.HookDeliveries, "list", elsewhere)
    run(client)
    assert len([r for r in app_env.github.requests if r.path == "/app/hook/deliveries"]) == 1


def test_unusable_list_items_are_skipped(client, app_env: AppEnv) -> None:
    hooks = app_env.github.hooks
    good = hooks.record("guid-good", status_code=503)
    bad = hooks.record("not a guid!", status_code=503)
    run(client)
    assert posted(app_env) == [good.id] and bad.id not in posted(app_env)


@pytest.mark.parametrize("handler", ["redeliver_failed", "reconcile"])
def test_a_schedule_before_create_app_does_nothing_and_does_not_fail(client, app_env: AppEnv, monkeypatch,
                                                                     json_logs, handler: str) -> None:
    monkeypatch.setenv("GITHUB_APP_ID", "")
    settings.cache_clear()
    client.lambda_.invoke(handler, client.events.generate_cw_event("aws.events", "Scheduled Event", {}, []))
    assert app_env.github.requests == [] and app_env.sqs.sent == []
    [line] = [x for x in json_logs.lines() if x["message"].startswith("not configured yet")]
    assert "GITHUB_APP_ID" in line["reason"]


@pytest.mark.parametrize("fault", [{"status": 502, "count": 3},
                                   {"status": 403, "headers": {"Retry-After": "60"},
                                    "message": "You have exceeded a secondary rate limit"}])
def test_a_redelivery_github_could_not_take_is_asked_again_next_run(client, app_env: AppEnv, json_logs, monkeypatch,
                                                                    fault: dict) -> None:
    from chalicelib.github import app as seam

    monkeypatch.setattr(seam, "RETRY_BACKOFF_SECONDS", 0.0)
    failed = app_env.github.hooks.record("guid-1", status_code=503)
    app_env.github.inject("/app/hook/deliveries/*/attempts", **fault)
    run(client)
    assert posted(app_env) == []
    [line] = json_logs.find("redelivery failed")
    assert line["guid"] == "guid-1" and line["http_status"] == fault["status"]
    run(client)  # GitHub takes it now
    assert posted(app_env) == [failed.id]


def test_a_redelivery_github_refuses_is_never_asked_again(client, app_env: AppEnv, json_logs) -> None:
    app_env.github.hooks.record("guid-1", status_code=503)
    app_env.github.inject("/app/hook/deliveries/*/attempts", status=404, message="Not Found")
    run(client)
    run(client)
    assert posted(app_env) == [] and len([r for r in app_env.github.requests if r.method == "POST"]) == 1
    assert [line["http_status"] for line in json_logs.find("redelivery refused")] == [404]

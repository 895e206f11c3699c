"""The reporting sender over real HTTP to the GitHub stand-in: bounded retries on transient answers only."""

from __future__ import annotations

import pytest

from chalicelib.outcome import requests as reports
from chalicelib.github.send import GitHubUnavailable, send
from standins.github import GitHubStandIn

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def checks_token(github: GitHubStandIn) -> str:
    """A token of installation 77 (octo-org) with checks: write on its repository `app`."""
    github.installations[77].permissions.update(checks="write")
    from chalicelib.github.app import GitHubApp

    app = GitHubApp(str(github.app_id), github.private_key_pem, github.url)
    return app.mint_token(77, ["app"], {"checks": "write", "metadata": "read"}).value


def create() -> reports.ApiRequest:
    return reports.create_check_run("octo-org/app", SHA, "e1", reports.Output("t", "s"))


def test_a_check_run_is_created_with_the_token_given(github: GitHubStandIn, checks_token: str) -> None:
    answer = send(github.url, checks_token, create())
    assert answer.status == 201 and answer.body["status"] == "queued"
    [run] = github.check_runs.values()
    assert run.writes[0][1].value == checks_token and run.external_id == "e1"


def test_server_errors_are_retried_a_bounded_number_of_times(github: GitHubStandIn, checks_token: str) -> None:
    waits: list[float] = []
    github.inject("/repos/octo-org/app/check-runs", status=502, count=2)
    assert send(github.url, checks_token, create(), sleep=waits.append).status == 201
    assert waits == [1.0, 2.0]
    github.inject("/repos/octo-org/app/check-runs", status=503, count=3)
    with pytest.raises(GitHubUnavailable, match="HTTP 503 after 3 attempts"):
        send(github.url, checks_token, create(), sleep=waits.append)
    assert len(github.check_runs) == 1


def test_a_rate_limit_waits_at_most_a_few_seconds_of_retry_after(github: GitHubStandIn, checks_token: str) -> None:
    waits: list[float] = []
    github.inject("/repos/*", status=429, headers={"Retry-After": "3600"})
    assert send(github.url, checks_token, create(), sleep=waits.append).status == 201
    assert waits == [10.0]


def test_a_refusal_is_answered_at_once_and_never_retried(github: GitHubStandIn, checks_token: str) -> None:
    github.installations[77].permissions.pop("checks")
    request = reports.create_check_run("octo-org/other", SHA, "e1", reports.Output("t", "s"))
    github.inject("/repos/octo-org/other/check-runs", status=403, count=5, message="Resource not accessible")
    answer = send(github.url, checks_token, request, sleep=lambda _s: pytest.fail("retried a 403"))
    assert (answer.status, answer.message()) == (403, "Resource not accessible")
    assert len([r for r in github.requests if r.path.endswith("/check-runs")]) == 1


def test_no_answer_at_all_is_unavailable_and_names_no_token(checks_token: str) -> None:
    with pytest.raises(GitHubUnavailable) as caught:
        send("http://127.0.0.1:9", checks_token, create(), timeout=2, sleep=lambda _s: None)
    assert checks_token not in str(caught.value)

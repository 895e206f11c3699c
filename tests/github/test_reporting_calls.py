"""The seam's reporting calls over real HTTP to the GitHub stand-in: sent as built, bounded, errors the seam's own."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from chalicelib.github import app as seam
from chalicelib.github.app import CheckRun, GitHubApp, InstallationToken
from chalicelib.github.errors import GitHubError, GitHubRefused, GitHubUnavailable
from chalicelib.outcome import requests as reports
from standins.github import GitHubStandIn

SHA = "0123456789abcdef0123456789abcdef01234567"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def app(github: GitHubStandIn, monkeypatch: pytest.MonkeyPatch) -> GitHubApp:
    """The App on the stand-in, its quick retries without their pauses."""
    monkeypatch.setattr(seam, "RETRY_BACKOFF_SECONDS", 0.0)
    return GitHubApp(str(github.app_id), github.private_key_pem, github.url)


@pytest.fixture
def checks_token(app: GitHubApp, github: GitHubStandIn) -> InstallationToken:
    """A token of installation 77 (octo-org) with checks: write on its repository `app`."""
    github.installations[77].permissions.update(checks="write")
    return app.mint_token(77, ["app"], {"checks": "write", "metadata": "read"})


def body() -> dict:
    return reports.check_run(SHA, "e1", reports.Output("t", "s"))


def posts(github: GitHubStandIn) -> list:
    return [r for r in github.requests if r.method == "POST" and r.path.endswith("/check-runs")]


def test_a_check_run_is_created_with_the_token_given_and_its_body_as_built(
        app: GitHubApp, github: GitHubStandIn, checks_token: InstallationToken) -> None:
    created = app.create_check_run(checks_token, "Octo-Org/app", body())
    [run] = github.check_runs.values()
    assert created == CheckRun(run.id, "queued", "e1")
    assert run.writes[0][1].value == checks_token.value
    [request] = posts(github)
    assert request.path == "/repos/Octo-Org/app/check-runs" and request.body == body()  # no field dropped


def test_a_check_run_is_read_then_completed_with_every_field_sent(
        app: GitHubApp, github: GitHubStandIn, checks_token: InstallationToken) -> None:
    created = app.create_check_run(checks_token, "octo-org/app", body())
    assert app.get_check_run(checks_token, "octo-org/app", created.id) == created
    completion = reports.completion("timed_out", reports.Output("Done", "summary"), now=NOW)
    done = app.update_check_run(checks_token, "octo-org/app", created.id, completion)
    assert (done.status, github.check_runs[created.id].conclusion) == ("completed", "timed_out")
    [patch] = [r for r in github.requests if r.method == "PATCH"]
    assert patch.path == f"/repos/octo-org/app/check-runs/{created.id}" and patch.body == completion


@pytest.mark.parametrize("repository", ["octo-org", "../x/y", "octo-org/..", "octo org/app", "a/b/c", "octo-org/"])
def test_only_a_repository_full_name_becomes_a_path(app: GitHubApp, github: GitHubStandIn, repository: str) -> None:
    token = InstallationToken("ghs_unused", "")
    with pytest.raises(ValueError, match="not a repository full name"):
        app.create_check_run(token, repository, body())
    with pytest.raises(ValueError):
        app.get_check_run(token, "octo-org/app", -1)
    assert github.requests == []


def test_server_errors_are_retried_a_bounded_number_of_times(
        app: GitHubApp, github: GitHubStandIn, checks_token: InstallationToken) -> None:
    github.inject("/repos/octo-org/app/check-runs", status=502, count=2)
    app.create_check_run(checks_token, "octo-org/app", body())
    assert len(posts(github)) == 3
    github.inject("/repos/octo-org/app/check-runs", status=503, count=3)
    with pytest.raises(GitHubUnavailable, match="HTTP 503") as caught:
        app.create_check_run(checks_token, "octo-org/app", body())
    assert caught.value.status == 503 and len(posts(github)) == 6  # two quick retries, no more
    assert len(github.check_runs) == 1


def test_a_rate_limit_is_not_waited_for(app: GitHubApp, github: GitHubStandIn,
                                        checks_token: InstallationToken) -> None:
    github.inject("/repos/*", status=429, headers={"Retry-After": "3600"}, message="Too many requests")
    with pytest.raises(GitHubUnavailable) as caught:  # a report never holds the Lambda for GitHub's limit
        app.create_check_run(checks_token, "octo-org/app", body())
    assert caught.value.status == 429 and len(posts(github)) == 1


def test_a_refusal_is_raised_at_once_with_githubs_message_and_never_retried(
        app: GitHubApp, github: GitHubStandIn, checks_token: InstallationToken) -> None:
    github.inject("/repos/octo-org/app/check-runs", status=403, count=5, message="Resource not accessible")
    with pytest.raises(GitHubRefused) as caught:
        app.create_check_run(checks_token, "octo-org/app", body())
    assert (caught.value.status, caught.value.reason) == (403, "Resource not accessible")
    assert len(posts(github)) == 1


def test_an_answer_without_a_check_run_is_an_error_with_its_status(
        app: GitHubApp, github: GitHubStandIn, checks_token: InstallationToken) -> None:
    github.inject("/repos/octo-org/app/check-runs", status=200, message="not a check run")
    with pytest.raises(GitHubError, match="answered no check run") as caught:
        app.create_check_run(checks_token, "octo-org/app", body())
    assert caught.value.status == 200 and type(caught.value) is GitHubError


class Refusing(httpx.BaseTransport):
    """A network on which no connection is ever made; counts the tries."""

    def __init__(self) -> None:
        self.tries = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Refuse the connection."""
        self.tries += 1
        raise httpx.ConnectError("connection refused", request=request)


def test_no_connection_is_retried_then_unavailable_and_names_no_token(github: GitHubStandIn,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seam, "RETRY_BACKOFF_SECONDS", 0.0)
    network = Refusing()
    app = GitHubApp(str(github.app_id), github.private_key_pem, github.url, transport=network)
    token = InstallationToken("ghs_never_shown", "")
    with pytest.raises(GitHubUnavailable) as caught:
        app.create_check_run(token, "octo-org/app", body())
    assert network.tries == 3 and caught.value.status is None
    assert "ConnectError" in str(caught.value) and token.value not in str(caught.value)


def test_a_storage_record_is_sent_as_built_with_the_token_given(app: GitHubApp, github: GitHubStandIn) -> None:
    github.installations[77].permissions.update(artifact_metadata="write")
    token = app.mint_token(77, ["app"], {"artifact_metadata": "write", "metadata": "read"})
    record = reports.storage_record(reports.StorageRecord(
        name="app", digest=DIGEST, version="v1", registry_url="https://r.example", repository="ghcr/octo-org/app",
        github_repository="app", artifact_url="https://console.example/app"))
    app.create_storage_record(token, "octo-org", record)
    [written] = github.storage_records
    assert written.body == record and written.token.value == token.value
    assert [r.path for r in github.requests if r.method == "POST"][-1] == (
        "/orgs/octo-org/artifacts/metadata/storage-record")
    with pytest.raises(ValueError, match="not an organization login"):
        app.create_storage_record(token, "octo-org/../x", record)

"""The seam's calls with the App JWT for healing, over real HTTP to the GitHub stand-in: errors the seam's own."""

from __future__ import annotations

import pytest

from chalicelib.github import app as seam
from chalicelib.github.app import GitHubApp, next_link
from chalicelib.github.errors import GitHubError, GitHubRefused, GitHubUnavailable
from standins.github import GitHubStandIn


@pytest.fixture
def app(github: GitHubStandIn, monkeypatch: pytest.MonkeyPatch) -> GitHubApp:
    """The App on the stand-in, its quick retries without their pauses."""
    monkeypatch.setattr(seam, "RETRY_BACKOFF_SECONDS", 0.0)
    return GitHubApp(str(github.app_id), github.private_key_pem, github.url)


def test_deliveries_come_in_pages_through_link_cursors(app: GitHubApp, github: GitHubStandIn) -> None:
    for number in range(5):
        github.hooks.record(f"guid-{number}", delivered_at=github.hooks.clock() - 100 + number)
    pages = list(app.webhook_deliveries(per_page=2, max_pages=10))
    assert [[item["guid"] for item in page] for page in pages] == [["guid-4", "guid-3"], ["guid-2", "guid-1"],
                                                                   ["guid-0"]]
    assert [len(p) for p in app.webhook_deliveries(per_page=2, max_pages=2)] == [2, 2]  # bounded
    assert all(r.auth == "jwt" for r in github.requests)


def test_a_link_is_followed_only_on_the_api_called() -> None:
    header = '<https://api.github.com/app/hook/deliveries?per_page=100&cursor=v1_9>; rel="next"'
    assert next_link(header, "https://api.github.com") == "https://api.github.com/app/hook/deliveries?per_page=100&cursor=v1_9"
    assert next_link(header, "https://api.github.com.evil.example") is None
    assert next_link(header.replace("next", "prev"), "https://api.github.com") is None


def test_a_listing_that_is_not_a_list_is_an_error_with_its_status(app: GitHubApp, github: GitHubStandIn) -> None:
    github.inject("/app/hook/deliveries", status=200, message="not a list")
    with pytest.raises(GitHubError, match="did not answer a list") as caught:
        next(app.webhook_deliveries(per_page=100, max_pages=1))
    assert caught.value.status == 200


def test_a_redelivery_github_refuses_is_refused_and_a_failing_one_unavailable(app: GitHubApp,
                                                                               github: GitHubStandIn) -> None:
    with pytest.raises(GitHubRefused) as refused:  # not in GitHub's list (any more)
        app.redeliver(12345)
    assert refused.value.status == 404
    delivery = github.hooks.record("guid-1", status_code=503)
    github.inject("/app/hook/deliveries/*/attempts", status=502, count=3)
    with pytest.raises(GitHubUnavailable) as failed:
        app.redeliver(delivery.id)
    assert failed.value.status == 502 and github.hooks.attempts == []
    app.redeliver(delivery.id)
    assert github.hooks.attempts == [delivery.id]


def test_installations_are_listed_with_the_app_jwt(app: GitHubApp, github: GitHubStandIn) -> None:
    found = app.installations(max_pages=1)
    assert sorted(item["id"] for item in found) == sorted(github.installations)
    [request] = github.requests
    assert request.query == {"per_page": ["100"], "page": ["1"]} and request.auth == "jwt"

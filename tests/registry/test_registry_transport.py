"""Transport: bounded retries with backoff on connection errors, 429 (Retry-After) and 5xx; typed errors."""

from __future__ import annotations

import httpx
import pytest

from chalicelib.registry.auth import ANONYMOUS, Authenticator
from chalicelib.registry.errors import RegistryError, RegistryUnavailable
from chalicelib.registry.manifests import head_manifest
from chalicelib.registry.reference import Repository
from chalicelib.registry.transport import RetryPolicy, Transport

REPO = Repository(host="registry.test", name="octo/app")


def make(answers: list[httpx.Response | Exception], sleeps: list[float], attempts: int = 4) -> Transport:
    """A transport whose registry gives these answers in order (an exception = a connection failure)."""
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = httpx.Client(transport=httpx.MockTransport(handle))
    return Transport(REPO, Authenticator([ANONYMOUS]), role="source", hint="-", client=client,
                     retry=RetryPolicy(attempts=attempts, backoff=0.5, max_backoff=2.0, max_retry_after=10.0),
                     sleep=sleeps.append)


def test_5xx_answers_are_retried_with_exponential_backoff() -> None:
    sleeps: list[float] = []
    transport = make([httpx.Response(503), httpx.Response(500), httpx.Response(502), httpx.Response(200)], sleeps)
    assert transport.request("GET", "/v2/", scopes=[]).status_code == 200
    assert sleeps == [0.5, 1.0, 2.0]


def test_429_waits_as_long_as_retry_after_says_within_a_cap() -> None:
    sleeps: list[float] = []
    transport = make([httpx.Response(429, headers={"Retry-After": "3"}),
                      httpx.Response(429, headers={"Retry-After": "3600"}), httpx.Response(200)], sleeps)
    assert transport.request("GET", "/v2/", scopes=[]).status_code == 200
    assert sleeps == [3.0, 10.0]


def test_connection_errors_are_retried_then_reported_as_unavailable_in_one_line() -> None:
    sleeps: list[float] = []
    refused = httpx.ConnectError("connection refused")
    transport = make([refused, refused, refused], sleeps, attempts=3)
    with pytest.raises(RegistryUnavailable) as caught:
        transport.request("GET", "/v2/octo/app/manifests/v1", scopes=[])
    assert len(sleeps) == 2
    message = str(caught.value)
    assert "source registry unreachable after 3 attempt(s): ConnectError" in message
    assert "\n" not in message


def test_retries_are_bounded_and_the_last_answer_becomes_a_typed_error() -> None:
    sleeps: list[float] = []
    body = {"errors": [{"code": "UNAVAILABLE", "message": "try later"}]}
    transport = make([httpx.Response(500, json=body)] * 4, sleeps)
    with pytest.raises(RegistryError) as caught:
        head_manifest(transport, "v1")
    assert caught.value.status == 500
    assert len(sleeps) == 3
    assert "HEAD https://registry.test/v2/octo/app/manifests/v1: HTTP 500" in str(caught.value)


def test_a_registry_error_carries_the_status_and_error_list_without_the_query_string() -> None:
    request = httpx.Request("PUT", "https://r.test/v2/a/blobs/uploads/x?_state=SECRETSTATE&digest=sha256:1")
    response = httpx.Response(400, request=request, json={"errors": [
        {"code": "DIGEST_INVALID", "message": "provided digest did not match uploaded content"}]})
    error = RegistryError.from_response(response)
    assert error.status == 400
    assert error.codes == {"DIGEST_INVALID"}
    assert "SECRETSTATE" not in str(error)
    assert str(error) == ("PUT https://r.test/v2/a/blobs/uploads/x: HTTP 400; "
                          "DIGEST_INVALID: provided digest did not match uploaded content")


def test_a_streamed_body_is_not_replayed() -> None:
    sleeps: list[float] = []
    transport = make([httpx.Response(500)], sleeps)
    response = transport.request("PUT", "/v2/octo/app/blobs/uploads/u", scopes=[], content=iter([b"abc"]))
    assert response.status_code == 500
    assert sleeps == []


def test_retry_after_may_be_an_http_date() -> None:
    policy = RetryPolicy(max_retry_after=30.0)
    response = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert policy.delay(1, response) == 0.0  # a date in the past: retry now


def test_a_redirect_loop_becomes_a_registry_error_naming_it() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"Location": str(request.url)})

    transport = Transport(REPO, Authenticator([ANONYMOUS]), role="source", hint="-",
                          client=httpx.Client(transport=httpx.MockTransport(handle)), sleep=lambda s: None)
    with pytest.raises(RegistryError) as caught:
        transport.request("GET", "/v2/octo/app/blobs/sha256:" + "a" * 64, scopes=[], follow_redirects=True)
    assert "TooManyRedirects" in str(caught.value) and "\n" not in str(caught.value)

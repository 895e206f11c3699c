"""Properties over thousands of generated deliveries: never a 5xx for bad input, never a queued message
without a valid signature, and every queued message is a well-formed sync request."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from chalicelib.names import InvalidName, destination
from chalicelib.jobs import Job
from chalicelib.webhook.events import Ignored, InstallationChange, MalformedDelivery, decide, sign
from tests.support.app_fixtures import DELIVERIES, WEBHOOK_SECRET, AppEnv, load_delivery

FIXTURES = sorted(p.stem for p in DELIVERIES.glob("*.json"))
ROUTE_SETTINGS = settings(max_examples=1500, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
EVENTS = st.sampled_from(["registry_package", "installation", "installation_repositories", "ping", "push", "",
                          "x" * 80])
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64), st.floats(allow_nan=False),
                      st.text(max_size=40), st.sampled_from(["", "CONTAINER", "container", "npm", "published",
                                                            "updated", "sha256:" + "0" * 64, "v1", "../x", "A/B"]))
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                             st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                          max_leaves=6)
ECR_NAME = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")


@st.composite
def mutated_payload(draw: Any) -> tuple[str, dict[str, Any]]:
    """A fixture delivery with a few fields replaced, deleted or retyped anywhere in the tree."""
    delivery = load_delivery(draw(st.sampled_from(FIXTURES)))
    payload = delivery.payload
    for _ in range(draw(st.integers(1, 4))):
        node: Any = payload
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            child = node[key]
            if isinstance(child, (dict, list)) and child and draw(st.booleans()):
                node = child
                continue
            if isinstance(node, dict) and draw(st.integers(0, 4)) == 0:
                del node[key]
            else:
                node[key] = draw(JSON_VALUE)
            break
    return delivery.event, payload


def headers_for(event: str, body: bytes, signature: str | None, delivery: str = "5c1f7a2e-0000-4000-8000-000000000000"
                ) -> dict[str, str]:
    """Build request headers; None leaves the signature out."""
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return headers


def test_signed_mutated_deliveries_never_get_a_5xx_and_only_valid_requests_are_queued(client, app_env: AppEnv
                                                                                      ) -> None:
    app_env.sqs.offline = True  # the queue's real behaviour is covered in test_webhook; here: many requests

    @ROUTE_SETTINGS
    @given(mutated_payload(), st.sampled_from(["", "x", "not-a-guid!", "5c1f7a2e-0000-4000-8000-000000000000"]))
    def check(mutated: tuple[str, dict[str, Any]], delivery: str) -> None:
        event, payload = mutated
        body = json.dumps(payload).encode()
        before = len(app_env.sqs.sent)
        response = client.http.post("/github/webhook", headers=headers_for(event, body, sign(
            WEBHOOK_SECRET.encode(), body), delivery), body=body)
        assert response.status_code < 500, response.body
        assert response.status_code in (200, 202, 400, 403)
        sent = app_env.sqs.sent[before:]
        assert (len(sent) >= 1) == (response.status_code == 202)
        for message in sent:
            request = Job.from_json(message["body"])  # validates every field
            assert message["dedup_id"] == request.dedup_id and message["group_id"] == request.group_id

    check()


def test_nothing_is_queued_without_a_valid_signature(client, app_env: AppEnv) -> None:
    app_env.sqs.offline = True
    valid = load_delivery("multiplatform-tagged-index")
    good = sign(WEBHOOK_SECRET.encode(), valid.body)

    @ROUTE_SETTINGS
    @given(
        body=st.one_of(st.just(valid.body), st.binary(max_size=300),
                       mutated_payload().map(lambda m: json.dumps(m[1]).encode())),
        signature=st.one_of(st.none(), st.just(good), st.text(max_size=80),
                            st.binary(min_size=32, max_size=32).map(lambda b: "sha256=" + b.hex()),
                            st.just(good.upper()), st.just(good[:-1]), st.just("sha1=" + good[7:])),
        event=EVENTS,
    )
    def check(body: bytes, signature: str | None, event: str) -> None:
        if signature == good and body == valid.body:
            return  # the one correctly signed combination
        before = len(app_env.sqs.sent)
        response = client.http.post("/github/webhook", headers=headers_for(event, body, signature), body=body)
        assert response.status_code == 401, response.body
        assert len(app_env.sqs.sent) == before

    check()


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(mutated_payload(), st.text(max_size=70))
def test_decide_only_ever_answers_or_refuses_as_malformed(mutated: tuple[str, dict[str, Any]], delivery: str
                                                          ) -> None:
    event, payload = mutated
    try:
        decision = decide(event, delivery, json.dumps(payload).encode())
    except MalformedDelivery:
        return
    assert isinstance(decision, (Job, Ignored, InstallationChange))
    if isinstance(decision, Job):
        assert Job.from_json(decision.to_json()) == decision
        assert decision.package.source("ghcr.io") == decision.package.source("ghcr.io").lower()


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(st.text(max_size=50), st.text(max_size=300))
def test_a_destination_is_a_valid_ecr_name_inside_the_owner_namespace_or_refused(owner: str, name: str) -> None:
    try:
        result = destination("ghcr", owner, name)
    except InvalidName:
        return
    assert result.startswith(f"ghcr/{owner.lower()}/")
    assert ECR_NAME.fullmatch(result) and 2 <= len(result) <= 256

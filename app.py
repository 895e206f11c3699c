"""ghcr2ecr's Lambda handlers: decorators only; each handler imports its step of the flow when it runs.

Importing a step inside its handler keeps every Lambda's cold start to what that handler uses (the webhook
route loads no AWS SDK or GitHub client until it needs one: tests/test_cold_import.py).
"""

from __future__ import annotations

from chalice import Chalice, Rate, Response
from chalice.app import CloudWatchEvent, Request, SQSEvent

from chalicelib.build.contract import event_pattern
from chalicelib.config import deployed_name, schedule_rate

app = Chalice(app_name="ghcr2ecr")

# Only the decorators read the environment at import: Chalice wires the queue and the rule at deploy time,
# with stage S's environment_variables (written by `ghcr2ecr deploy --stage S`) in the environment.
SYNC_QUEUE_NAME = deployed_name("SYNC_QUEUE_NAME")
CODEBUILD_PROJECT = deployed_name("CODEBUILD_PROJECT")
# Schedules: deployment settings REDELIVER_EVERY_MINUTES (default 15) and RECONCILE_EVERY_HOURS (default 24).
REDELIVER_EVERY = schedule_rate("REDELIVER_EVERY_MINUTES")
RECONCILE_EVERY = schedule_rate("RECONCILE_EVERY_HOURS")


@app.route("/github/webhook", methods=["POST"], content_types=["application/json"])
def webhook() -> Response:
    """Verify a GitHub delivery and queue the sync it asks for."""
    from chalicelib.webhook import edge

    request = _request()
    status, body = edge.receive(request.headers, _raw_body(request))
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


@app.route("/github/handoff", methods=["POST"], content_types=["application/json"])
def handoff() -> Response:
    """Accept a workflow's hand-off: a verified Actions ID token lends its job's token for one copy."""
    from chalicelib.handoff import route

    request = _request()
    status, body = route.receive(request.headers, _raw_body(request))
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


@app.route("/github/handoff/{handoff_id}", methods=["GET"])
def handoff_status(handoff_id: str) -> Response:
    """Answer how a hand-off's copy goes, to the repository that handed it off."""
    from chalicelib.handoff import route

    status, body = route.status(_request().headers, handoff_id)
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


@app.on_sqs_message(queue=SYNC_QUEUE_NAME, batch_size=1)
def dispatch(event: SQSEvent) -> None:
    """Start the copy build for each queued sync (a raised error makes SQS redeliver it)."""
    from chalicelib.dispatch import handler

    for record in event:
        handler.handle_message(record.body)


@app.on_cw_event(event_pattern(CODEBUILD_PROJECT))
def on_build_state(event: CloudWatchEvent) -> None:
    """Clean up after a finished copy build and tell the tenant its outcome."""
    from chalicelib.outcome import build_state

    build_state.handle_event(event.to_dict())


@app.schedule(Rate(1, unit=Rate.HOURS))
def sweep_tokens(event: CloudWatchEvent) -> None:
    """Delete token parameters older than a token's lifetime (expired; no build event cleaned them up)."""
    from chalicelib.build import token_cleanup

    token_cleanup.sweep()


@app.schedule(Rate(REDELIVER_EVERY, unit=Rate.MINUTES))
def redeliver_failed(event: CloudWatchEvent) -> None:
    """Ask GitHub to redeliver the webhook deliveries that failed through our fault (5xx, no answer)."""
    from chalicelib.heal import redeliver

    redeliver.run()


@app.schedule(Rate(RECONCILE_EVERY, unit=Rate.HOURS))
def reconcile(event: CloudWatchEvent) -> None:
    """Queue an every-tag sync of every mirrored package, through the event's path (queue, dispatch, build)."""
    from chalicelib.heal import reconcile as reconciling

    reconciling.run()


def _request() -> Request:
    """Return the request a route handler is answering (Chalice sets it before calling the handler)."""
    request = app.current_request
    if request is None:
        raise RuntimeError("no current request outside a route handler")
    return request


def _raw_body(request: Request) -> bytes:
    """Return the body exactly as received (the webhook's HMAC is over these bytes)."""
    body = request.raw_body or b""
    return body.encode() if isinstance(body, str) else body

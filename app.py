"""ghcr2ecr's Lambda handlers: decorators and a few lines each; the work lives in chalicelib."""

from __future__ import annotations

import os

from chalice import Chalice, Rate, Response
from chalice.app import CloudWatchEvent, SQSEvent

from chalicelib.outcome import build_state
from chalicelib.dispatch import handler as dispatching
from chalicelib.webhook import edge as intake
from chalicelib.build import token_cleanup
from chalicelib.config import schedule_rate

app = Chalice(app_name="ghcr2ecr")

# Only the decorators read the environment at import (Chalice wires the queue and the rule at deploy time).
# `chalice deploy --stage S` puts stage S's environment_variables into the environment before importing this
# file, and `ghcr2ecr deploy` writes both names into every stage it deploys; without them, the names the
# support stack creates for stage dev (infra/support-stack.yml: <app>-<stage>-sync.fifo, <app>-<stage>-copy).
SYNC_QUEUE_NAME = os.environ.get("SYNC_QUEUE_NAME") or f"{app.app_name}-dev-sync.fifo"
CODEBUILD_PROJECT = os.environ.get("CODEBUILD_PROJECT") or f"{app.app_name}-dev-copy"
# Schedules: deployment settings REDELIVER_EVERY_MINUTES (default 15) and RECONCILE_EVERY_HOURS (default 24).
REDELIVER_EVERY = schedule_rate("REDELIVER_EVERY_MINUTES")
RECONCILE_EVERY = schedule_rate("RECONCILE_EVERY_HOURS")


@app.route("/github/webhook", methods=["POST"], content_types=["application/json"])
def webhook() -> Response:
    """Verify a GitHub delivery and queue the sync it asks for."""
    request = app.current_request
    status, body = intake.receive(request.headers, request.raw_body or b"")
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


@app.on_sqs_message(queue=SYNC_QUEUE_NAME, batch_size=1)
def dispatch(event: SQSEvent) -> None:
    """Start the copy build for each queued sync (a raised error makes SQS redeliver it)."""
    for record in event:
        dispatching.handle_message(record.body)


@app.on_cw_event(build_state.event_pattern(CODEBUILD_PROJECT))
def on_build_state(event: CloudWatchEvent) -> None:
    """Clean up after a finished copy build and log its outcome."""
    build_state.handle_event(event.to_dict())


@app.schedule(Rate(1, unit=Rate.HOURS))
def sweep_tokens(event: CloudWatchEvent) -> None:
    """Delete token parameters older than a token's lifetime (expired; no build event cleaned them up)."""
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

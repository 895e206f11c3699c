"""The webhook's edge: verify, decide, enqueue, answer; no GitHub or CodeBuild call (DESIGN.md, HTTP contract).

GitHub waits 10 s for a 2xx and never redelivers on its own (FACTS.md §1): answer in milliseconds, and
answer 5xx only when the delivery could not be accepted (the webhook secret could not be read, or the queue
could not be written), so the delivery shows as failed and can be redelivered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib import aws, logs
from chalicelib.config import settings
from chalicelib.jobs import Job
from chalicelib.webhook.events import (MAX_BODY_BYTES, Ignored, InstallationChange, MalformedDelivery, decide,
                                      signature_valid)

Answer = tuple[int, dict[str, Any]]


SECRET_MAX_AGE = 300  # seconds the webhook secret is cached per container (docs/operators.md says so)


def webhook_secret() -> bytes:
    """Return the webhook secret (SSM SecureString, cached 5 minutes per container by powertools Parameters,
    so a rotated secret is picked up within minutes and SSM sees one read per container per 5 minutes)."""
    return aws.ssm().get_secret(settings().github_webhook_secret_parameter, max_age=SECRET_MAX_AGE).encode()


def receive(headers: Mapping[str, str], body: bytes) -> Answer:
    """Handle one delivery: return (HTTP status, JSON body)."""
    logs.unbind_all()
    delivery = (headers.get("x-github-delivery") or "")[:64]
    event = (headers.get("x-github-event") or "")[:64]
    logs.bind(delivery=delivery or None, event=event or None)
    if len(body) > MAX_BODY_BYTES:
        return _answer(413, "rejected", f"body over {MAX_BODY_BYTES} bytes")
    signature = headers.get("x-hub-signature-256")
    if not signature:
        return _answer(401, "rejected", "missing X-Hub-Signature-256")
    try:
        secret = webhook_secret()
    except Exception as exc:  # SSM unreachable, throttled or misconfigured: the delivery cannot be checked now
        return _unavailable("could not read the webhook secret", "SecretUnavailable", exc,
                            "could not verify the delivery; redeliver it later")
    if not signature_valid(secret, body, signature):
        return _answer(401, "rejected", "signature does not match")
    if not event or not delivery:
        return _answer(400, "rejected", "missing X-GitHub-Event or X-GitHub-Delivery")
    try:
        decision = decide(event, delivery, body)
    except MalformedDelivery as exc:
        return _answer(400, "rejected", str(exc))
    account = _account(decision)
    if account is not None and not settings().account_allowed(*account):
        return _answer(403, "rejected", f"account {account[0]} is not allowed by ALLOWED_ACCOUNTS")
    if isinstance(decision, Ignored):
        return _answer(200, "ignored", decision.reason)
    if isinstance(decision, InstallationChange):
        # Nothing to store: dispatch asks GitHub for a token each time, and GitHub refuses one for a deleted
        # (404) or suspended (403) installation, so it gets no more builds. New repositories are backfilled.
        logs.bind(installation=decision.installation_id)
        if not decision.backfill:
            return _answer(200, "ignored", f"{decision.action}: installation lifecycle acknowledged")
        return _enqueue(list(decision.backfill),
                        f"{decision.action}: backfill of {len(decision.repositories)} repositories")
    return _enqueue([decision])


def _enqueue(jobs: list[Job], what: str = "") -> Answer:
    first = jobs[0]
    if first.selection.all_tags:
        logs.bind(installation=first.installation_id, origin=first.origin)
    else:
        logs.bind(installation=first.installation_id, package=first.package.path, digest=first.selection.digest,
                  tag=first.selection.tag)
    message_ids = []
    try:
        for job in jobs:
            message_ids.append(aws.sqs().send_fifo(settings().sync_queue_url, job.to_json(), job.group_id,
                                                   job.dedup_id))
    except Exception as exc:  # any failure to queue: GitHub must show the delivery as failed
        return _unavailable("could not queue the sync", "QueueFailures", exc,
                            "could not queue the delivery; redeliver it later")
    logs.logger.info("sync queued", extra={"message_id": message_ids[0], "jobs": len(jobs)})
    logs.count("SyncsQueued", len(jobs))
    if first.selection.all_tags:
        return 202, {"status": "queued", "reason": what, "jobs": len(jobs), "message_ids": message_ids}
    return 202, {"status": "queued", "source": first.package.source(settings().ghcr_registry),
                 "digest": first.selection.digest, "tag": first.selection.tag, "message_id": message_ids[0]}


def _account(decision: Job | Ignored | InstallationChange) -> tuple[str, int] | None:
    if isinstance(decision, Job):
        return decision.package.owner, decision.package.owner_id
    if isinstance(decision, InstallationChange):
        return decision.account_login, decision.account_id
    if decision.account_login is not None and decision.account_id is not None:
        return decision.account_login, decision.account_id
    return None


def _answer(status: int, kind: str, reason: str) -> Answer:
    log = logs.logger.info if status < 400 else logs.logger.warning
    log("delivery answered", extra={"http_status": status, "reason": reason})
    return status, {"status": kind, "reason": reason}


def _unavailable(message: str, metric: str, exc: Exception, reason: str) -> Answer:
    """Log and count a failure of ours, and answer 503 so GitHub shows the delivery as failed (redeliverable)."""
    logs.logger.error(message, extra={"error": type(exc).__name__})  # the type only: messages may name URLs
    logs.count(metric)
    return 503, {"status": "error", "reason": reason}

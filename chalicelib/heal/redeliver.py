"""`redeliver_failed`: ask GitHub to redeliver the App's webhook deliveries that failed through our fault.

GitHub never redelivers on its own and keeps deliveries 3 days (FACTS.md §11; docs "Handling failed webhook
deliveries"). Each run, with the App JWT only:
1. list `GET /app/hook/deliveries` (100 per page, newest first, `Link` cursor pages) back to where the
   previous run started looking (its state), at most MAX_PAGES pages;
2. group by `guid` (the X-GitHub-Delivery, the same for every redelivery); a guid with a successful attempt
   is done; a guid whose latest attempt was refused on purpose (400, 401, 403, 413 and other 4xx but 408 and
   429) would fail the same way again and is left alone;
3. redeliver (`POST /app/hook/deliveries/{id}/attempts`) each other guid whose latest attempt got a 5xx, a 408
   or 429, or no answer at all (GitHub does not document the status_code it records then: 0 or none, with a
   status text that is not "OK"), at most MAX_PER_RUN per run and MAX_ATTEMPTS per guid, never one older
   than GitHub's retention;
4. save its state in one SSM String parameter: where to look from next time, and how often it redelivered
   each guid still being retried (bounded to MAX_TRACKED guids).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from chalicelib import aws, logs
from chalicelib.config import ConfigError, settings
from chalicelib.github.errors import GitHubError, GitHubRefused

if TYPE_CHECKING:
    from chalicelib.github.app import GitHubApp

PER_PAGE = 100  # GitHub's maximum
MAX_PAGES = 30  # 3,000 deliveries per run
MAX_PER_RUN = 100
MAX_ATTEMPTS = 3  # redeliveries per guid
MAX_TRACKED = 40  # guids kept in the state (an SSM standard parameter holds 4 KB)
RETENTION = 3 * 24 * 3600.0  # GitHub keeps deliveries 3 days
RETENTION_MARGIN = 3600.0  # not tried in the last hour of retention: the redelivery itself may come too late
OVERLAP = 300.0  # seconds re-read before the previous run's start: deliveries recorded late
REFUSED_ON_PURPOSE = frozenset(range(400, 500)) - {408, 429}
_GUID = re.compile(r"[A-Za-z0-9-]{1,64}")


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt as GitHub lists it (validated: the list is remote input)."""

    id: int
    guid: str
    delivered_at: float
    status_code: int | None
    status: str
    redelivery: bool

    @property
    def succeeded(self) -> bool:
        """Tell whether the attempt got a 2xx."""
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def ours_to_fix(self) -> bool:
        """Tell whether the attempt failed through our fault: 5xx, 408/429, or no answer (a timeout, no connection)."""
        if self.succeeded:
            return False
        if self.status_code is None or not 100 <= self.status_code <= 599:
            return self.status.strip().upper() != "OK"  # no HTTP answer recorded
        return self.status_code not in REFUSED_ON_PURPOSE and self.status_code >= 400


@dataclass
class State:
    """What the handler remembers between runs."""

    since: float = 0.0  # epoch seconds: the next run lists back to here
    tries: dict[str, list[float]] = field(default_factory=dict)  # guid -> [redeliveries, first seen]

    def to_json(self) -> str:
        """Serialize, keeping the MAX_TRACKED most recently seen guids."""
        kept = dict(sorted(self.tries.items(), key=lambda item: item[1][1])[-MAX_TRACKED:])
        return json.dumps({"since": round(self.since, 3), "tries": kept}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> State:
        """Parse the stored state; anything unreadable starts afresh (the listing is bounded anyway)."""
        try:
            data = json.loads(text or "{}")
            tries = {str(g): [float(v[0]), float(v[1])] for g, v in dict(data.get("tries") or {}).items()}
            return cls(float(data.get("since") or 0.0), tries)
        except (ValueError, TypeError, AttributeError, IndexError, KeyError):
            return cls()


@dataclass
class RunSummary:
    """What one run did."""

    pages: int = 0
    listed: int = 0
    redelivered: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)


def run(app: GitHubApp | None = None, clock: Callable[[], float] = time.time) -> RunSummary:
    """Run once: list, decide, redeliver, save the state."""
    from chalicelib.github.client import github_app

    logs.unbind_all()
    logs.bind(handler="redeliver_failed")
    try:
        parameter = settings().redelivery_state_parameter
    except ConfigError as exc:  # deployed before create-app: nothing to redeliver yet, and no error every run
        logs.logger.warning("not configured yet; nothing redelivered", extra={"reason": str(exc)})
        return RunSummary()
    app = app or github_app()
    state = State.from_json(aws.ssm().read_text(parameter))
    started = clock()
    oldest = started - RETENTION
    since = max(state.since - OVERLAP, oldest)
    summary = RunSummary()
    attempts = _list(app, since, summary)
    deferred_from: float | None = None
    for guid, tries in _latest_by_guid(attempts).items():
        latest = tries[-1]
        if any(t.succeeded for t in tries):
            state.tries.pop(guid, None)
            continue
        if not latest.ours_to_fix:
            summary.refused.append(guid)
            continue
        count, first = state.tries.get(guid, [0.0, tries[0].delivered_at])
        if count >= MAX_ATTEMPTS or first < oldest + RETENTION_MARGIN:
            summary.given_up.append(guid)
            continue
        if len(summary.redelivered) >= MAX_PER_RUN:
            summary.deferred.append(guid)
            deferred_from = min(deferred_from or latest.delivered_at, latest.delivered_at)
            continue
        outcome = _redeliver(app, latest)
        if outcome == "refused":  # GitHub will not redeliver it (gone from its list meanwhile): never again
            summary.given_up.append(guid)
            state.tries[guid] = [float(MAX_ATTEMPTS), first]
            continue
        if outcome == "unavailable":  # GitHub is failing: the rest waits for the next run
            summary.deferred.append(guid)
            deferred_from = min(deferred_from or latest.delivered_at, latest.delivered_at)
            break
        summary.redelivered.append(guid)
        state.tries[guid] = [count + 1, first]
    # Next time, look back to this run's start, or to the oldest failure left for the next run.
    state.since = min(started, deferred_from - 1) if deferred_from is not None else started
    state.tries = {g: v for g, v in state.tries.items() if v[1] >= oldest}
    aws.ssm().put_text(parameter, state.to_json(), "ghcr2ecr redeliver_failed state (no secret)")
    logs.logger.info("redelivery run finished", extra={
        "pages": summary.pages, "listed": summary.listed, "redelivered": len(summary.redelivered),
        "refused": len(summary.refused), "given_up": len(summary.given_up), "deferred": len(summary.deferred)})
    return summary


def _list(app: GitHubApp, since: float, summary: RunSummary) -> list[Attempt]:
    """List deliveries newest first back to `since` (the seam follows Link cursors on GitHub's own host only)."""
    found: list[Attempt] = []
    for items in app.webhook_deliveries(PER_PAGE, MAX_PAGES):
        summary.pages += 1
        page = [a for a in (_attempt(item) for item in items[:PER_PAGE]) if a is not None]
        summary.listed += len(page)
        found += [a for a in page if a.delivered_at >= since]
        if not page or min(a.delivered_at for a in page) < since:
            break
    return found


def _attempt(item: Any) -> Attempt | None:
    """Validate one list item; None for anything unusable (logged, never trusted)."""
    try:
        guid, delivered = item["guid"], item["delivered_at"]
        code = item.get("status_code")
        if not (isinstance(guid, str) and _GUID.fullmatch(guid) and type(item["id"]) is int):
            raise ValueError("id or guid")
        when = datetime.strptime(str(delivered)[:20].rstrip("Z"), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        return Attempt(item["id"], guid, when.timestamp(), code if type(code) is int else None,
                       str(item.get("status") or "")[:100], item.get("redelivery") is True)
    except (KeyError, TypeError, ValueError):
        logs.logger.warning("unusable webhook delivery in GitHub's list skipped")
        return None


def _latest_by_guid(attempts: list[Attempt]) -> dict[str, list[Attempt]]:
    """Group attempts by guid, each group oldest first (the last one is the latest attempt)."""
    groups: dict[str, list[Attempt]] = {}
    for attempt in sorted(attempts, key=lambda a: (a.delivered_at, a.id)):
        groups.setdefault(attempt.guid, []).append(attempt)
    return groups


def _redeliver(app: GitHubApp, attempt: Attempt) -> str:
    """POST /app/hook/deliveries/{id}/attempts (202: GitHub redelivers); "redelivered", "refused" or "unavailable"."""
    try:
        app.redeliver(attempt.id)
    except GitHubRefused as exc:
        logs.logger.warning("redelivery refused", extra={"guid": attempt.guid, "delivery_id": attempt.id,
                                                         "http_status": exc.status})
        return "refused"
    except GitHubError as exc:  # 5xx, a rate limit; a timeout: whether GitHub took it is unknown, the next run sees
        if exc.status is None:
            logs.logger.warning("redelivery failed", extra={"guid": attempt.guid, "error": type(exc).__name__})
        else:
            logs.logger.warning("redelivery failed", extra={"guid": attempt.guid, "delivery_id": attempt.id,
                                                            "http_status": exc.status})
        return "unavailable"
    logs.logger.info("delivery redelivered", extra={"guid": attempt.guid, "delivery_id": attempt.id,
                                                    "status_code": attempt.status_code, "status": attempt.status})
    logs.count("Redeliveries")
    return "redelivered"

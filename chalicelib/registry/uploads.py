"""Upload sessions open right now, so that an aborted run (SIGTERM, Ctrl-C) cancels them before it exits.

An abandoned session holds the bytes sent so far until the registry expires it (ECR does, after a
while); a `DELETE` of the upload URL (distribution spec "Canceling an Upload") frees it at once. A copy
that fails cancels its own session; `cancel_on_signals` covers the process being stopped mid-copy.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from chalicelib.registry.errors import RegistryError
from chalicelib.registry.transport import Transport

log = logging.getLogger(__name__)
CANCEL_SECONDS = 10.0  # all cancellations together, on the way out of a stopped process
_lock = threading.Lock()
_open: dict[int, tuple[Transport, str]] = {}
_ids = itertools.count()


def cancel(transport: Transport, location: str) -> None:
    """Best-effort DELETE of an abandoned upload session (the registry also expires them)."""
    try:
        transport.request("DELETE", location, scopes=[(transport.repository.name, "pull,push")], once=True).close()
    except (RegistryError, httpx.HTTPError):
        pass


@contextlib.contextmanager
def tracked(transport: Transport, location: str) -> Iterator[None]:
    """Hold an upload session as open while the block runs; cancel it when the block raises."""
    key = next(_ids)
    with _lock:
        _open[key] = (transport, location)
    try:
        yield
    except BaseException:
        cancel(transport, location)
        raise
    finally:
        with _lock:
            _open.pop(key, None)


def cancel_open(seconds: float = CANCEL_SECONDS) -> int:
    """Cancel every open upload session in parallel, waiting at most `seconds`; return how many there were."""
    with _lock:
        sessions = list(_open.values())
        _open.clear()
    threads = [threading.Thread(target=cancel, args=session, daemon=True) for session in sessions]
    for thread in threads:
        thread.start()
    until = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(0.0, until - time.monotonic()))
    return len(sessions)


@contextlib.contextmanager
def cancel_on_signals(say: Callable[[str], None]) -> Iterator[None]:
    """While the block runs, SIGTERM/SIGINT cancel the open upload sessions, say so, and end the process.

    The worker threads are mid-transfer and cannot be interrupted, so the process exits at once
    (status 128 + signal) instead of unwinding. Only the main thread can install handlers; elsewhere
    this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        count = cancel_open()
        say(f"stopped by {signal.Signals(signum).name}: {count} open upload(s) cancelled; no tag was set for "
            "content not yet complete")
        os._exit(128 + signum)

    saved = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)

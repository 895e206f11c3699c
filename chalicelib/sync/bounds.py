"""Bounds of one sync: work submitted in bounded windows, and the sync-wide deadline."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
WINDOW = 128  # futures in flight per bounded_map: memory stays flat whatever the number of items
DEADLINE_REACHED = "not started: the sync's deadline was reached"


def bounded_map(pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T],
                window: int = WINDOW) -> Iterator[R]:
    """Like `pool.map`, in order, but with at most `window` futures submitted at a time."""
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yield lists of at most `size` items."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def alongside(fn: Callable[[], R]) -> Callable[[], R]:
    """Start `fn` in a thread of its own; return a function that waits for its result (or its exception)."""
    outcome: list[tuple[bool, object]] = []

    def work() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the caller when it joins
            outcome.append((False, exc))

    thread = threading.Thread(target=work, name="ghcr2ecr-alongside", daemon=True)
    thread.start()

    def join() -> R:
        thread.join()
        ok, value = outcome[0]
        if not ok:
            raise value  # type: ignore[misc]
        return value  # type: ignore[return-value]

    return join


class Deadline:
    """A point in time after which a sync starts no new work (None: never)."""

    def __init__(self, seconds: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = None if seconds is None else clock() + seconds

    def expired(self) -> bool:
        """Tell whether the deadline has passed."""
        return self._end is not None and self._clock() >= self._end

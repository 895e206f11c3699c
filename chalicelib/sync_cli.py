"""`ghcr2ecr sync`: turn parsed flags into a SyncRequest, show progress, write the report, exit 0/1/2."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

from chalicelib import sync
from chalicelib.registry.copy import Stats

PREFIX = "ghcr2ecr sync"


def _size(count: float) -> str:
    """Render a byte count for humans."""
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


class StderrProgress:
    """Progress on stderr: an in-place line on a terminal, a plain line every few seconds otherwise."""

    def __init__(self, stream: TextIO | None = None, interval: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval if interval is not None else (0.25 if self.tty else 2.0)
        self._phase = "starting"
        self._stats: Stats | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = ""
        self._started = time.monotonic()

    def start(self, stats: Stats) -> None:
        """Begin reporting these counters."""
        self._stats = stats
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="ghcr2ecr-progress", daemon=True)
        self._thread.start()

    def phase(self, name: str) -> None:
        """Note the current phase (resolving, planning, copying, tagging)."""
        self._phase = name

    def stop(self) -> None:
        """Stop reporting; finish the in-place line."""
        self._stop.set()
        if self._thread:
            self._thread.join()
        if self.tty and self._last:
            self._write(self._line(), final=True)

    def _line(self) -> str:
        """Describe where the run is."""
        s = self._stats or Stats()
        blobs = s.blobs_copied + s.blobs_mounted + s.blobs_skipped
        planned = f" of {_size(s.bytes_planned)}" if s.bytes_planned else ""
        return (f"{PREFIX}: {self._phase}: {_size(s.bytes_moved)}{planned} moved, {blobs} blob(s) done, "
                f"{s.manifests_copied} manifest(s) pushed, {time.monotonic() - self._started:.0f}s")

    def _write(self, line: str, final: bool = False) -> None:
        """Print one progress line (in place on a terminal)."""
        if self.tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last = line

    def _loop(self) -> None:
        """Print the line every interval while it changes."""
        while not self._stop.wait(self.interval):
            line = self._line()
            if line.rsplit(",", 1)[0] != self._last.rsplit(",", 1)[0] or self.tty:
                self._write(line)


def main(args: argparse.Namespace) -> int:
    """Run `ghcr2ecr sync`; 0 when everything asked is in DEST, 1 with a one-line cause, 2 on bad usage."""
    try:
        request = sync.SyncRequest.build(
            args.source, args.dest, tags=args.tag, digest=args.digest, all_tags=args.all_tags,
            tag_globs=args.tags, signatures=args.signatures, create_repository=args.create_repository,
            concurrency=args.concurrency,
        )
    except ValueError as exc:
        print(f"{PREFIX}: {exc}", file=sys.stderr)
        return 2
    with _logging_to_stderr(args.quiet):
        report = sync.run(request, progress=None if args.quiet else StderrProgress())
    if args.report:
        try:
            with open(args.report, "w", encoding="utf-8") as handle:
                json.dump(report.to_dict(), handle, indent=2)
                handle.write("\n")
        except OSError as exc:
            print(f"{PREFIX}: cannot write the report to {args.report}: {exc.strerror}", file=sys.stderr)
            return 1
    if not report.ok:
        print(f"{PREFIX}: {report.cause()}", file=sys.stderr)
    elif not args.quiet:
        print(f"{PREFIX}: {summary(report)}", file=sys.stderr)
    return report.exit_code


def summary(report: sync.Report) -> str:
    """Describe a successful run in one line."""
    s = report.stats
    tags = ", ".join(report.tags_set) or "none"
    return (f"done in {report.duration_seconds:.1f}s: {s.manifests_copied} manifest(s) and {s.blobs_copied} blob(s) "
            f"copied ({_size(s.bytes_moved)}), {s.blobs_mounted} mounted, {s.blobs_skipped + s.manifests_skipped} "
            f"already there; tags set: {tags}; {len(report.tags_unchanged)} unchanged"
            + "".join(f"; {tag} skipped: {why}" for tag, why in report.tags_skipped.items()))


@contextlib.contextmanager
def _logging_to_stderr(quiet: bool) -> Iterator[None]:
    """Show retries and credential fall-backs on stderr for this run unless quiet (never a credential value)."""
    logger = logging.getLogger("chalicelib")
    saved = (logger.level, logger.propagate)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PREFIX}: %(message)s"))
    if quiet:
        handler.setLevel(logging.CRITICAL + 1)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]

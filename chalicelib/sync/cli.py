"""`ghcr2ecr sync`: turn parsed flags into a SyncRequest, show progress, write the report, exit 0/1/2.

Every stderr line (log records, progress, the summary or the one-line cause) goes through LineFormat:
`ghcr2ecr sync: ...` for people, JSON lines in a build (DESIGN.md: logs carry delivery, installation,
package and digest).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TextIO

from chalicelib.sync import engine as sync
from chalicelib.sync.copy import Stats
from chalicelib.values import human_size
from chalicelib.registry import uploads
from chalicelib.registry.redact import redact

PREFIX = "ghcr2ecr sync"


class LineFormat:
    """Renders one stderr line: `ghcr2ecr sync: <message>`, or in a build a JSON object with the sync's ids.

    JSON lines when `CODEBUILD_BUILD_ID` is set or `GHCR2ECR_LOG_FORMAT=json`: `level`, `message`, `delivery`,
    `installation` (from GHCR2ECR_DELIVERY_ID / GHCR2ECR_INSTALLATION_ID), `package` (the source), `digest`,
    `tag`. A JSON line is still one line; no field ever holds a credential.
    """

    def __init__(self, json_lines: bool = False, fields: Mapping[str, str | None] | None = None) -> None:
        self.json_lines = json_lines
        self.fields = dict(fields or {})

    @classmethod
    def for_run(cls, env: Mapping[str, str], args: argparse.Namespace) -> LineFormat:
        """Choose the format from the environment and take the ids from it and from the flags."""
        wanted = bool(env.get("CODEBUILD_BUILD_ID")) or env.get("GHCR2ECR_LOG_FORMAT", "").strip().lower() == "json"
        return cls(wanted, {
            "delivery": env.get("GHCR2ECR_DELIVERY_ID") or None, "installation": env.get("GHCR2ECR_INSTALLATION_ID")
            or None, "package": args.source, "digest": args.digest or None, "tag": ",".join(args.tag) or None})

    def render(self, message: str, level: str = "info") -> str:
        """Return the line for a message (without its newline), any credential value masked."""
        message = redact(message)
        if not self.json_lines:
            return f"{PREFIX}: {message}"
        return json.dumps({"timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
                           "level": level, "service": "ghcr2ecr", "message": message, **self.fields})


class _Formatter(logging.Formatter):
    """A logging formatter that renders records through a LineFormat."""

    def __init__(self, lines: LineFormat) -> None:
        super().__init__()
        self.lines = lines

    def format(self, record: logging.LogRecord) -> str:
        """Render the record's message (never its exception text: messages are the contract)."""
        return self.lines.render(" ".join(record.getMessage().split()), record.levelname.lower())


class StderrProgress:
    """Progress on stderr: an in-place line on a terminal, a plain line every few seconds otherwise."""

    def __init__(self, stream: TextIO | None = None, interval: float | None = None,
                 lines: LineFormat | None = None) -> None:
        self.stream = stream or sys.stderr
        self.lines = lines or LineFormat()
        self.tty = self.stream.isatty() and not self.lines.json_lines
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
        planned = f" of {human_size(s.bytes_planned)}" if s.bytes_planned else ""
        return (f"{self._phase}: {human_size(s.bytes_moved)}{planned} moved, {blobs} blob(s) done, "
                f"{s.manifests_copied} manifest(s) pushed, {time.monotonic() - self._started:.0f}s")

    def _write(self, line: str, final: bool = False) -> None:
        """Print one progress line (in place on a terminal)."""
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.lines.render(line) + ("\n" if final else ""))
        else:
            self.stream.write(self.lines.render(line) + "\n")
        self.stream.flush()
        self._last = line

    def tick(self) -> None:
        """Print the current line (on a terminal always; otherwise only when more than the clock changed)."""
        line = self._line()
        if line.rsplit(",", 1)[0] != self._last.rsplit(",", 1)[0] or self.tty:
            self._write(line)

    def _loop(self) -> None:
        """Tick every interval until stopped."""
        while not self._stop.wait(self.interval):
            self.tick()


def main(args: argparse.Namespace) -> int:
    """Run `ghcr2ecr sync`; 0 when everything asked is in DEST, 1 with a one-line cause, 2 on bad usage."""
    lines = LineFormat.for_run(os.environ, args)
    try:
        request = sync.SyncRequest.build(
            args.source, args.dest, tags=args.tag, digest=args.digest, all_tags=args.all_tags,
            tag_globs=args.tags, signatures=args.signatures, create_repository=args.create_repository,
            concurrency=args.concurrency, aliases=getattr(args, "aliases", False),
            deadline=default_deadline(os.environ, getattr(args, "deadline", None)),
            budget=default_budget(os.environ, getattr(args, "budget", None)),
        )
    except ValueError as exc:
        print(lines.render(str(exc), "error"), file=sys.stderr)
        return 2
    def say(message: str) -> None:
        print(lines.render(message, "error"), file=sys.stderr, flush=True)

    with _logging_to_stderr(args.quiet, lines), uploads.cancel_on_signals(say):
        report = sync.run(request, progress=None if args.quiet else StderrProgress(lines=lines))
    if args.report:
        try:
            with open(args.report, "w", encoding="utf-8") as handle:
                json.dump(report.to_dict(), handle, indent=2)
                handle.write("\n")
        except OSError as exc:
            print(lines.render(f"cannot write the report to {args.report}: {exc.strerror}", "error"), file=sys.stderr)
            return 1
    if not report.ok:
        print(lines.render(report.cause(), "error"), file=sys.stderr)
    elif not args.quiet:
        print(lines.render(summary(report)), file=sys.stderr)
    return report.exit_code


BUILD_MARGIN_SECONDS = 90  # after the sync: the token's revocation and the report's printing


def default_deadline(env: Mapping[str, str], given: float | None) -> float | None:
    """Return the sync's deadline: --deadline, else GHCR2ECR_DEADLINE_SECONDS, else in CodeBuild the build
    timeout (GHCR2ECR_BUILD_TIMEOUT_MINUTES, 15 on Lambda compute) less a margin; None outside a build."""
    if given is not None:
        return given
    for name in ("GHCR2ECR_DEADLINE_SECONDS", "GHCR2ECR_BUILD_TIMEOUT_MINUTES"):
        text = env.get(name, "").strip()
        if text:
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{name} must be a number, not {text[:40]!r}") from None
            return value if name == "GHCR2ECR_DEADLINE_SECONDS" else max(60.0, value * 60 - BUILD_MARGIN_SECONDS)
    return 15 * 60 - BUILD_MARGIN_SECONDS if env.get("CODEBUILD_BUILD_ID") else None


def default_budget(env: Mapping[str, str], given: int | None) -> int:
    """Return the budget: --budget, else GHCR2ECR_SYNC_BUDGET, else the default."""
    if given is not None:
        return given
    text = env.get("GHCR2ECR_SYNC_BUDGET", "").strip()
    if not text:
        return sync.desire.DEFAULT_BUDGET
    if not text.isdigit():
        raise ValueError(f"GHCR2ECR_SYNC_BUDGET must be a whole number, not {text[:40]!r}")
    return int(text)


def summary(report: sync.Report) -> str:
    """Describe a successful run in one line."""
    s = report.stats
    tags = ", ".join(report.tags_set) or "none"
    return (f"done in {report.duration_seconds:.1f}s: {s.manifests_copied} manifest(s) and {s.blobs_copied} blob(s) "
            f"copied ({human_size(s.bytes_moved)}), {s.blobs_mounted} mounted, {s.blobs_skipped + s.manifests_skipped} "
            f"already there; tags set: {tags}; {len(report.tags_unchanged)} unchanged"
            + "".join(f"; {tag} skipped: {why}" for tag, why in report.tags_skipped.items())
            + "".join(f"; {text}" for text in report.notes + report.warnings))


@contextlib.contextmanager
def _logging_to_stderr(quiet: bool, lines: LineFormat) -> Iterator[None]:
    """Show retries and credential fall-backs on stderr for this run unless quiet (never a credential value)."""
    logger = logging.getLogger("chalicelib")
    saved = (logger.level, logger.propagate)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(lines))
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

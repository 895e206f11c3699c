"""Shared pieces of the operator commands: where the project is, and how progress is printed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

Say = Callable[[str], None]


def say_stdout(message: str) -> None:
    """Print one progress line, flushed at once (a long step should not hide the ones before it)."""
    print(message, flush=True)


def find_project_dir(start: Path | None = None) -> Path:
    """Return the nearest directory at or above `start` (default: cwd) holding `.chalice/config.json`."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".chalice" / "config.json").is_file():
            return candidate
    raise SystemExit(f"ghcr2ecr: no .chalice/config.json at or above {here}: run this from the ghcr2ecr checkout")

"""Reading JSON from outside (events, reports, GitHub's answers): a value is used only as the type it must be."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def human_size(count: float) -> str:
    """Render a byte count for people, in decimal units: `512 B`, `1.5 KB`, `2.3 MB`, `1.0 GB`."""
    for unit in ("B", "KB", "MB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def mapping(value: Any) -> Mapping[str, Any]:
    """Return `value` when it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}

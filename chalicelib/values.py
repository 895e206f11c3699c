"""Reading JSON from outside (events, reports, GitHub's answers): a value is used only as the type it must be."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def mapping(value: Any) -> Mapping[str, Any]:
    """Return `value` when it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}

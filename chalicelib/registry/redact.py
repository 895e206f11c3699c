"""Every credential value this process sends, in every encoding it sends it, kept out of every message.

A registry can echo what it received (the Authorization header) in an error body, a header or even a
tag name. So each value is registered when it is first put on the wire: a password or token as it is,
`user:password` and its Basic base64 (padded and unpadded), and each bearer token a token endpoint
answered. `redact(text)` replaces all of them; the messages that leave the process (exceptions, logs,
stderr lines, the report) go through it.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

MASK = "<redacted>"
MIN_LENGTH = 6  # shorter values (an empty anonymous password) would mask ordinary words
_lock = threading.Lock()
_values: set[str] = set()
_ordered: list[str] = []  # longest first, so a value inside another is masked with it


def register(*values: str | None) -> None:
    """Remember secret values (already in the encodings they are sent in)."""
    fresh = {v for v in values if v and len(v) >= MIN_LENGTH} - _values
    if not fresh:
        return
    global _ordered
    with _lock:
        _values.update(fresh)
        _ordered = sorted(_values, key=len, reverse=True)


def register_basic(username: str, password: str) -> None:
    """Remember a Basic credential: the password, `user:password` and its base64 forms."""
    pair = f"{username}:{password}"
    encoded = base64.b64encode(pair.encode()).decode()
    register(password, pair, encoded, encoded.rstrip("="))


def redact(text: str) -> str:
    """Return `text` with every registered value masked."""
    for value in _ordered:
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_all(document: Any) -> Any:
    """Mask registered values in every string of a JSON-like document (dicts, lists, strings)."""
    if isinstance(document, str):
        return redact(document)
    if isinstance(document, dict):
        return {redact_all(k): redact_all(v) for k, v in document.items()}
    if isinstance(document, list):
        return [redact_all(item) for item in document]
    return document

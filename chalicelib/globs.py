"""Tag glob filters (`v*,latest,!*-rc*`): fnmatch-style globs, matched in linear-ish time, never regexes.

A filter is a comma list of globs. A glob starting with `!` excludes. A tag is selected when it matches
at least one including glob (or there are only excluding globs) and no excluding glob.

Glob syntax: `*` any run of characters, `?` one character, `[abc]` / `[a-z]` / `[!abc]` one character
of (or not of) a set; everything else is literal and case-sensitive (OCI tags are case-sensitive).
The matcher is a two-pointer walk with one backtrack point (O(len(glob) * len(tag)) at worst), so a
tenant-written value (the `GHCR2ECR_TAGS` Actions variable) cannot make it backtrack exponentially.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_GLOBS = 100
MAX_GLOB_LENGTH = 128  # an OCI tag is at most 128 characters (distribution spec, "tag" grammar)
_ALLOWED = re.compile(r"[A-Za-z0-9_.\-*?\[\]!]+")  # tag characters plus glob metacharacters


@dataclass(frozen=True)
class Glob:
    """One parsed glob: its text and its tokens (literal char, '*', '?', or a character set)."""

    text: str
    tokens: tuple[str | tuple[bool, frozenset[str]], ...]

    def matches(self, tag: str) -> bool:
        """Tell whether the whole tag matches this glob."""
        tokens, t, g = self.tokens, 0, 0
        star_g, star_t = -1, 0
        while t < len(tag):
            if g < len(tokens) and tokens[g] == "*":
                star_g, star_t = g, t  # remember where the star was; first try matching it empty
                g += 1
            elif g < len(tokens) and _one(tokens[g], tag[t]):
                g += 1
                t += 1
            elif star_g >= 0:
                star_t += 1  # let the last star swallow one more character and retry from there
                t, g = star_t, star_g + 1
            else:
                return False
        while g < len(tokens) and tokens[g] == "*":
            g += 1
        return g == len(tokens)


def _one(token: str | tuple[bool, frozenset[str]], char: str) -> bool:
    """Match one non-star token against one character."""
    if isinstance(token, tuple):
        negated, chars = token
        return (char in chars) != negated
    return token == "?" or token == char


def _parse_glob(text: str) -> Glob:
    """Tokenize one glob, raising ValueError on characters a tag cannot hold or an unclosed '['."""
    if len(text) > MAX_GLOB_LENGTH:
        raise ValueError(f"tag glob {text[:20]!r}... is longer than {MAX_GLOB_LENGTH} characters")
    if not _ALLOWED.fullmatch(text):
        raise ValueError(
            f"tag glob {text!r} has characters a tag cannot contain (allowed: letters, digits, _ . - and * ? [ ])"
        )
    tokens: list[str | tuple[bool, frozenset[str]]] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "[":
            end = text.find("]", i + 2 if text[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                raise ValueError(f"tag glob {text!r} has an unclosed '['")
            body = text[i + 1 : end]
            negated = body.startswith("!")
            tokens.append((negated, _expand_set(body[1:] if negated else body, text)))
            i = end + 1
            continue
        if char == "]":
            raise ValueError(f"tag glob {text!r} has a ']' without '['")
        if char == "!":
            raise ValueError(f"tag glob {text!r}: '!' is only allowed at the start (exclude) or inside [...]")
        if char == "*" and tokens and tokens[-1] == "*":
            i += 1  # '**' is the same as '*'
            continue
        tokens.append(char)
        i += 1
    return Glob(text=text, tokens=tuple(tokens))


def _expand_set(body: str, glob: str) -> frozenset[str]:
    """Expand the inside of a [...] set (`a-z0-9_`) into its characters."""
    if not body:
        raise ValueError(f"tag glob {glob!r} has an empty [] set")
    chars: set[str] = set()
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            low, high = body[i], body[i + 2]
            if low > high:
                raise ValueError(f"tag glob {glob!r} has a reversed range {low}-{high}")
            chars.update(chr(c) for c in range(ord(low), ord(high) + 1))
            i += 3
        else:
            chars.add(body[i])
            i += 1
    return frozenset(chars)


@dataclass(frozen=True)
class TagFilter:
    """A parsed tag filter: including and excluding globs."""

    include: tuple[Glob, ...]
    exclude: tuple[Glob, ...]

    def matches(self, tag: str) -> bool:
        """Tell whether the filter selects this tag."""
        if self.include and not any(glob.matches(tag) for glob in self.include):
            return False
        return not any(glob.matches(tag) for glob in self.exclude)

    def __str__(self) -> str:
        """Render the filter back as its comma list."""
        return ",".join([g.text for g in self.include] + ["!" + g.text for g in self.exclude])


def parse_tag_globs(text: str) -> TagFilter:
    """Parse a comma list of tag globs (`v*,latest,!*-rc*`), raising ValueError saying what is wrong."""
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise ValueError("tag glob list is empty (expected e.g. 'v*,latest,!*-rc*')")
    if "" in items:
        raise ValueError(f"tag glob list {text!r} has an empty item (two commas in a row or a trailing comma?)")
    if len(items) > MAX_GLOBS:
        raise ValueError(f"tag glob list has {len(items)} globs; at most {MAX_GLOBS} are allowed")
    include: list[Glob] = []
    exclude: list[Glob] = []
    for item in items:
        if item.startswith("!"):
            if len(item) == 1:
                raise ValueError(f"tag glob list {text!r} has a '!' with nothing to exclude")
            exclude.append(_parse_glob(item[1:]))
        else:
            include.append(_parse_glob(item))
    return TagFilter(include=tuple(include), exclude=tuple(exclude))

"""Destination names: `<prefix>/<owner login, lower-cased>/<GHCR2ECR_REPOSITORY or package, lower-cased>`."""

from __future__ import annotations

import re

# ECR repository names (FACTS.md §8): lower-case segments joined by "/", 2-256 characters in all.
_SEGMENT = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
MIN_LENGTH, MAX_LENGTH = 2, 256


class InvalidName(ValueError):
    """A destination name would break ECR's rules or leave the owner's namespace."""


def check_repository_variable(value: str) -> str:
    """Validate a `GHCR2ECR_REPOSITORY` value: a relative ECR path, lower-case, no `..`, no leading `/`."""
    if value != value.strip() or not value:
        raise InvalidName("must be a non-empty name without surrounding spaces")
    if value != value.lower():
        raise InvalidName(f"{value!r} has upper-case letters; ECR names are lower-case")
    if value.startswith("/") or value.endswith("/"):
        raise InvalidName(f"{value!r} must be relative to the owner's namespace (no leading or trailing '/')")
    _check_segments(value)
    return value


def destination(prefix: str, owner_login: str, name: str) -> str:
    """Return the ECR repository for a package of `owner_login`, always inside `<prefix>/<owner>/`."""
    owner = owner_login.lower()
    if not _SEGMENT.fullmatch(owner):
        raise InvalidName(f"owner {owner_login!r} is not a valid ECR path segment")
    path = name.lower()
    _check_segments(path)
    prefix = prefix.strip("/")
    result = "/".join(part for part in (prefix, owner, path) if part)
    if not MIN_LENGTH <= len(result) <= MAX_LENGTH:
        raise InvalidName(f"{result!r} is {len(result)} characters; ECR allows {MIN_LENGTH}-{MAX_LENGTH}")
    namespace = "/".join(part for part in (prefix, owner) if part) + "/"
    if not result.startswith(namespace):  # unreachable with the checks above; kept as the invariant
        raise InvalidName(f"{result!r} leaves the owner's namespace {namespace!r}")
    return result


def _check_segments(path: str) -> None:
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidName(f"{path!r} has an empty, '.' or '..' path segment")
        if not _SEGMENT.fullmatch(segment):
            raise InvalidName(
                f"{path!r}: segment {segment!r} must be lower-case letters and digits, "
                "separated by single '.', '_' or '-'"
            )

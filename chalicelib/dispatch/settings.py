"""A tenant's settings: the GHCR2ECR_* Actions variables of DESIGN.md, validated into InstallationConfig (pure).

An invalid value stops that package's sync with a message naming the variable; it is never defaulted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib import names
from chalicelib.globs import TagFilter, parse_tag_globs

VARIABLE_PREFIX = "GHCR2ECR_"
KNOWN_VARIABLES = ("GHCR2ECR_ENABLED", "GHCR2ECR_TAGS", "GHCR2ECR_REPOSITORY", "GHCR2ECR_SIGNATURES", "GHCR2ECR_CHECKS",
                   "GHCR2ECR_HANDOFF")
HANDOFF_MODES = ("allow", "only", "deny")


class InvalidConfig(ValueError):
    """An Actions variable holds a value we refuse; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"Actions variable {variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class InstallationConfig:
    """The per-installation settings of DESIGN.md, validated."""

    enabled: bool = True
    tags: TagFilter | None = None  # None: every tag
    repository: str | None = None  # None: the package name
    signatures: bool = True
    checks: bool = True  # report the outcome as a check run on the image's commit
    handoff: str = "allow"  # GHCR2ECR_HANDOFF: allow | only (events and reconcile start nothing) | deny
    unknown: tuple[str, ...] = ()  # GHCR2ECR_* names we do not know (probably typos): logged


def _boolean(variables: Mapping[str, str], name: str, default: bool) -> bool:
    raw = variables.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise InvalidConfig(name, f"{raw[:40]!r} is not true or false")
    return value == "true"


def config_from_variables(variables: Mapping[str, str]) -> InstallationConfig:
    """Validate the GHCR2ECR_* variables (names case-insensitive, as GitHub stores them) into a config."""
    upper = {name.upper(): value for name, value in variables.items()}
    tags = None
    if "GHCR2ECR_TAGS" in upper:
        try:
            tags = parse_tag_globs(upper["GHCR2ECR_TAGS"])
        except ValueError as exc:
            raise InvalidConfig("GHCR2ECR_TAGS", str(exc)) from None
    repository = upper.get("GHCR2ECR_REPOSITORY")
    if repository is not None:
        try:
            names.check_repository_variable(repository)
        except names.InvalidName as exc:
            raise InvalidConfig("GHCR2ECR_REPOSITORY", str(exc)) from None
    return InstallationConfig(
        enabled=_boolean(upper, "GHCR2ECR_ENABLED", True),
        tags=tags,
        repository=repository,
        signatures=_boolean(upper, "GHCR2ECR_SIGNATURES", True),
        checks=_boolean(upper, "GHCR2ECR_CHECKS", True),
        handoff=_handoff(upper),
        unknown=tuple(sorted(n for n in upper if n.startswith(VARIABLE_PREFIX) and n not in KNOWN_VARIABLES)),
    )


def _handoff(variables: Mapping[str, str]) -> str:
    raw = variables.get("GHCR2ECR_HANDOFF")
    if raw is None:
        return "allow"
    value = raw.strip().lower()
    if value not in HANDOFF_MODES:
        raise InvalidConfig("GHCR2ECR_HANDOFF", f"{raw[:40]!r} is not one of {', '.join(HANDOFF_MODES)}")
    return value

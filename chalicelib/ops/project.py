"""Shared pieces of the operator commands: where the project is, the AWS session, how progress is printed."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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


NO_REGION = ("ghcr2ecr: no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a region in your AWS profile) "
             "and re-run")


def aws_session(env: Mapping[str, str] | None = None) -> Any:
    """Return a boto3 session whose region is AWS_REGION, else AWS_DEFAULT_REGION, else the profile's.

    That is the AWS CLI's order. boto3 outside Lambda reads only the last two (docs/FACTS.md, boto3 region),
    so AWS_REGION is passed explicitly. Exits with a one-line message when no region is set.
    """
    import boto3
    from botocore.exceptions import ProfileNotFound

    env = os.environ if env is None else env
    try:
        session = boto3.session.Session(region_name=env.get("AWS_REGION", "").strip() or None)
    except ProfileNotFound as exc:
        raise SystemExit(f"ghcr2ecr: {exc}: set AWS_PROFILE to a profile in your AWS config, or unset it") from None
    if not session.region_name:
        raise SystemExit(NO_REGION)
    return session


def region_environment(env: Mapping[str, str], region: str) -> dict[str, str]:
    """Return `env` with both region variables set, for a child process (chalice) that reads only one."""
    return {**env, "AWS_REGION": region, "AWS_DEFAULT_REGION": region}

"""`ghcr2ecr reconcile [--stage S] [--owner LOGIN] [--package NAME]`: the reconcile schedule's work, run now."""

from __future__ import annotations

import argparse
import os
import sys


def main(args: argparse.Namespace) -> int:
    """Queue the jobs; 0 when queued (or nothing to do), 1 when the stage is not deployed or a call failed."""
    from chalicelib.config import ConfigError, settings

    _stage_environment(args.stage)
    if args.package and not args.owner:
        print("ghcr2ecr reconcile: --package needs --owner", file=sys.stderr)
        return 2
    settings.cache_clear()  # the stage's environment was just merged in
    try:
        settings()
    except ConfigError as exc:
        print(f"ghcr2ecr reconcile: {exc}; deploy stage {args.stage} first (ghcr2ecr deploy)", file=sys.stderr)
        return 1
    from chalicelib.heal import reconcile

    summary = reconcile.run(owner=args.owner, package=args.package, origin="operator")
    print(f"ghcr2ecr reconcile: {summary.packages} package(s) queued in {summary.jobs} job(s) (one build each), "
          f"run {summary.run_id}", file=sys.stderr)
    for path, why in sorted(summary.skipped.items()):
        print(f"ghcr2ecr reconcile: {path} skipped: {why}", file=sys.stderr)
    return 0


def _stage_environment(stage: str) -> None:
    """Put the stage's Lambda environment under what the shell already sets: the checkout's .chalice/config.json,
    what it lacks filled from the deployment's own record in AWS (chalicelib/ops/state.py)."""
    from chalicelib import aws
    from chalicelib.ops import state
    from chalicelib.ops.chalice_config import ChaliceConfig
    from chalicelib.ops.project import find_project_dir

    try:
        config = ChaliceConfig(find_project_dir())
    except (SystemExit, FileNotFoundError):
        return  # the environment alone may name everything (a CI job)
    try:
        recorded = state.load_stage(aws.session().client("ssm"), config, stage)
    except Exception:  # noqa: BLE001 - no credentials or no AWS: the checkout and the shell may be enough
        recorded = None
    if recorded:
        state.merge_stage(config, stage, recorded)
    if config.has_stage(stage):
        for name, value in config.env(stage).items():
            if value and not os.environ.get(name):
                os.environ[name] = value

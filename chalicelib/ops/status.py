"""`ghcr2ecr status` and `ghcr2ecr retry-dead-letters` (placeholder until implemented)."""

from __future__ import annotations

import argparse

from chalicelib.ops.project import aws_session


def main(args: argparse.Namespace) -> int:
    """Entry point."""
    aws_session()
    return 2

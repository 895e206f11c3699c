"""Where a build's outcome lives: its `--report` JSON under its build id, and on_build_state's effect markers.

Layout in the support stack's report bucket (REPORT_BUCKET; infra/support-stack.yml, objects expire):
- `reports/<project>/<build uuid>.json`: written by the build (`ghcr2ecr store-report`, in the buildspec's
  `finally`); the build's role may only put objects under `reports/`.
- `effects/<project>/<build uuid>/<effect>`: written by on_build_state with an S3 conditional write
  (`If-None-Match: *`) *before* the effect, so a retried or duplicated event does each effect at most once.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import TYPE_CHECKING, Any

from chalicelib import aws
from chalicelib.build.contract import REPORT_BUCKET

if TYPE_CHECKING:
    import argparse

REPORT_LIMIT = 1024 * 1024  # bytes; a report is a few KB (thousands of tags stay far below this)
BUCKET_VARIABLE = REPORT_BUCKET  # the contract's name (chalicelib/build/contract.py)
_BUILD = re.compile(r"(?:arn:[\w-]+:codebuild:[\w-]+:\d{12}:build/)?"  # a build ARN, or just its id:
                    r"([A-Za-z0-9][A-Za-z0-9_-]{1,254}):([A-Za-z0-9-]{1,64})")


def build_key(build_id: str) -> str | None:
    """Return `<project>/<uuid>` for a build id (`project:uuid`) or a build ARN; None for anything else."""
    match = _BUILD.fullmatch(build_id or "")
    return f"{match.group(1)}/{match.group(2)}" if match else None


def report_key(build_id: str) -> str | None:
    """Return the object key of a build's report."""
    key = build_key(build_id)
    return f"reports/{key}.json" if key else None


def marker_key(build_id: str, effect: str) -> str | None:
    """Return the object key that marks one effect of a build's final event as done."""
    key = build_key(build_id)
    return f"effects/{key}/{effect}" if key and re.fullmatch(r"[a-z_-]{1,40}", effect) else None


def load(bucket: str, build_id: str) -> dict[str, Any] | None:
    """Read a build's report; None when there is none (the build died first) or it is not a JSON object."""
    key = report_key(build_id)
    if not bucket or key is None:
        return None
    try:
        data = aws.s3().get(bucket, key, REPORT_LIMIT)
        report = json.loads(data) if data is not None else None
    except ValueError:  # over the limit, or not JSON: treated as no report
        return None
    return report if isinstance(report, dict) else None


def claim(bucket: str, build_id: str, effect: str) -> bool:
    """Mark an effect as started; False when an earlier delivery of the event already did (do nothing then)."""
    key = marker_key(build_id, effect)
    if not bucket or key is None:
        return True  # no ledger configured: effects that are idempotent by themselves still are
    return aws.s3().put(bucket, key, b"{}", if_absent=True)


def main(args: argparse.Namespace) -> int:
    """`ghcr2ecr store-report FILE`: upload the build's report under CODEBUILD_BUILD_ID; 0 also when none."""
    bucket, build_id = os.environ.get(BUCKET_VARIABLE, "").strip(), os.environ.get("CODEBUILD_BUILD_ID", "")
    key = report_key(build_id)
    if not bucket or key is None:
        print("store-report: no report bucket or build id; the outcome is reported from the build's state",
              file=sys.stderr)
        return 0
    try:
        with open(args.file, "rb") as handle:
            data = handle.read(REPORT_LIMIT + 1)
    except OSError:
        print("store-report: no report (the sync did not get that far)", file=sys.stderr)
        return 0
    if len(data) > REPORT_LIMIT:
        print(f"store-report: the report is over {REPORT_LIMIT} bytes; not stored", file=sys.stderr)
        return 1
    try:
        aws.s3().put(bucket, key, data)
    except Exception as exc:  # the type only: botocore messages name the bucket, never a credential
        print(f"store-report: could not store the report ({type(exc).__name__})", file=sys.stderr)
        return 1
    print(f"store-report: stored s3://{bucket}/{key}", file=sys.stderr)
    return 0

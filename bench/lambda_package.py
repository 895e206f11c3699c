"""The Lambda package: its size (`chalice package`) and the cold import of each handler's module path.

    .venv/bin/python bench/lambda_package.py              # cold imports only (a few seconds)
    .venv/bin/python bench/lambda_package.py --package    # also builds the package (`chalice package`, ~1-2 min)

A cold import is what a new Lambda container pays before the handler runs: `import app` plus what the
handler's first call imports (function-local imports in chalicelib), timed in a fresh interpreter, best of
five runs, next to `import boto3` and `import githubkit` measured the same way. Both wall and CPU time are
printed: on a busy machine the CPU time is the steadier of the two.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# app.py wires the names `ghcr2ecr deploy` writes into a stage: measured as stage dev is committed
os.environ.setdefault("SYNC_QUEUE_NAME", "ghcr2ecr-dev-sync.fifo")
os.environ.setdefault("CODEBUILD_PROJECT", "ghcr2ecr-dev-copy")

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5
# handler -> what its first invocation imports beyond `import app`: its step of the flow (app.py imports each
# step inside its handler), the AWS SDK and metrics every handler's first AWS call loads, and its GitHub client
AWS = ["boto3", "botocore.config", "aws_lambda_powertools.metrics"]
FIRST_CALL = {
    "webhook": ["chalicelib.webhook.edge", *AWS],
    "handoff": ["chalicelib.handoff.route", *AWS],
    "dispatch": ["chalicelib.dispatch.handler", *AWS, "githubkit", "githubkit.exception", "githubkit.typing"],
    "on_build_state": ["chalicelib.outcome.build_state", *AWS, "githubkit", "githubkit.exception"],
    "sweep_tokens": ["chalicelib.build.token_cleanup", *AWS],
}
PEERS = {"import boto3 (peer)": ["boto3"], "import githubkit (peer)": ["githubkit"]}


def cold_import_ms(modules: list[str], with_app: bool) -> tuple[float, float]:
    """Return the best-of-RUNS (wall, CPU) ms of importing `modules` (after `app` when asked) in a fresh Python."""
    code = ("import time; t, c = time.perf_counter(), time.process_time(); " + ("import app; " if with_app else "")
            + "".join(f"import {name}; " for name in modules)
            + "print((time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000)")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    runs = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                           check=True, timeout=120).stdout.split() for _ in range(RUNS)]
    return min(float(wall) for wall, _ in runs), min(float(cpu) for _, cpu in runs)


def package_summary(stage: str) -> list[str]:
    """Build the Lambda package with `chalice package` and describe it."""
    with tempfile.TemporaryDirectory() as out:
        chalice = Path(sys.executable).parent / "chalice"
        env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
        subprocess.run([str(chalice), "package", "--stage", stage, out], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=1800)
        path = Path(out) / "deployment.zip"
        infos = zipfile.ZipFile(path).infolist()
        sizes: collections.Counter[str] = collections.Counter()
        for info in infos:
            sizes[info.filename.split("/")[0]] += info.file_size
        lines = [f"package: {path.stat().st_size / 1e6:.1f} MB zipped, {sum(sizes.values()) / 1e6:.1f} MB "
                 f"unpacked, {len(infos):,} files; largest:"]
        lines += [f"  {name:32} {size / 1e6:6.1f} MB" for name, size in sizes.most_common(8)]
        return lines


def main() -> int:
    """Print the cold imports (and the package) as a small table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", action="store_true", help="also build and measure the Lambda package")
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args()
    if args.package:
        print("\n".join(package_summary(args.stage)))
    print(f"cold import, best of {RUNS} fresh interpreters (Python {sys.version.split()[0]}), wall / CPU ms:")
    rows: list[tuple[str, list[str], bool]] = [("import app", [], True)]
    rows += [(f"{handler} (app + first call)", modules, True) for handler, modules in FIRST_CALL.items()]
    rows += [(name, modules, False) for name, modules in PEERS.items()]
    for name, modules, with_app in rows:
        wall, cpu = cold_import_ms(modules, with_app)
        print(f"  {name:34} {wall:7.0f} / {cpu:5.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the hand-off route's costs, next to `import boto3` measured in the same run.

Run by hand: `.venv/bin/python bench/handoff.py [--runs 7] [--verifications 200]`.
- cold import (`python -X importtime`, fresh interpreters, median): `app`, `chalicelib.handoff.route`, and
  the first verification's imports (`jwt`, with cryptography), next to `import boto3`;
- a fresh container's first verification, in a fresh interpreter: import PyJWT, fetch the issuer's key set
  from a loopback OIDC issuer stand-in, verify (median of `--runs`);
- a warm verification (keys cached): median and p99 over `--verifications` tokens.
The issuer is `standins.oidc.OidcIssuer` on 127.0.0.1, so the fetch costs a loopback round trip, not the
internet's; GitHub's issuer adds its own latency once per container (and once per unknown `kid`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "SYNC_QUEUE_NAME": "ghcr2ecr-dev-sync.fifo",
       "CODEBUILD_PROJECT": "ghcr2ecr-dev-copy"}
AUDIENCE = "https://ghcr2ecr.example/api"
FIRST = """
import sys, time
started = time.perf_counter()
from chalicelib.handoff.verify import Verifier
caller = Verifier(sys.argv[1], sys.argv[2]).verify(sys.argv[3])
print((time.perf_counter() - started) * 1000)
"""


def cold_import(module: str, runs: int) -> float:
    """Return the median cumulative `-X importtime` of `module` in fresh interpreters, in ms."""
    times = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=ROOT,
                              capture_output=True, text=True, check=True, env=ENV)
        last = [line for line in done.stderr.splitlines() if line.rstrip().endswith(f"| {module}")][-1]
        times.append(int(last.split("|")[1]) / 1000)
    return statistics.median(times)


def main() -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--verifications", type=int, default=200)
    args = parser.parse_args()
    from chalicelib.handoff.verify import Verifier
    from standins.oidc import OidcIssuer

    rows = [(f"cold import: {m}", cold_import(m, args.runs))
            for m in ("boto3", "app", "chalicelib.handoff.route", "jwt")]
    with OidcIssuer("/_services/token") as issuer:
        firsts = []
        for _ in range(args.runs):
            done = subprocess.run([sys.executable, "-c", FIRST, issuer.issuer, AUDIENCE, issuer.mint(AUDIENCE)],
                                  cwd=ROOT, capture_output=True, text=True, check=True, env=ENV)
            firsts.append(float(done.stdout.strip()))
        rows.append(("first verification in a fresh container (imports + key-set fetch + verify)",
                     statistics.median(firsts)))
        verifier = Verifier(issuer.issuer, AUDIENCE)
        verifier.verify(issuer.mint(AUDIENCE))  # keys fetched
        tokens = [issuer.mint(AUDIENCE) for _ in range(args.verifications)]
        warm = []
        for token in tokens:
            started = time.perf_counter()
            verifier.verify(token)
            warm.append((time.perf_counter() - started) * 1000)
    warm.sort()
    rows.append(("warm verification, median", statistics.median(warm)))
    rows.append(("warm verification, p99", warm[int(len(warm) * 0.99) - 1]))
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  ms")
    for name, value in rows:
        print(f"{name:<{width}}  {value:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

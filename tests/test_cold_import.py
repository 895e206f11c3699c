"""The webhook's cold start stays small: `import app` loads none of the heavy libraries the other handlers use.

A timed assertion would be flaky, so the 300 ms budget of the route's cold import is kept structurally;
bench/lambda_package.py measures it (README, Benchmarks).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Imported on first use only: by dispatch and on_build_state (GitHub), by the first AWS call (the runtime's boto3).
HEAVY = ("githubkit", "pydantic", "cryptography", "httpx", "boto3", "yaml", "urllib.request")


def test_importing_app_loads_none_of_the_heavy_libraries() -> None:
    code = f"import json, sys, app; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=True)
    assert json.loads(done.stdout) == []

# What every build's commands (`sync`, `run-job`) must not import at start: the AWS SDK and GitHub's client (an
# ECR destination and the token's revocation import them on first use), httpx's CLI, the CA bundle.
BUILD_LAZY = ("githubkit", "pydantic", "boto3", "botocore", "click", "pygments", "rich", "certifi", "chalice")


def test_the_build_commands_start_without_the_sdks() -> None:
    code = (f"import json, sys, chalicelib.sync.cli, chalicelib.build.run_job; "
            f"print(json.dumps([m for m in {BUILD_LAZY!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=True)
    assert json.loads(done.stdout) == []

"""The test suite itself: a missing real part fails the run with one line; it is never skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_without_docker_registry_and_skopeo_the_registry_tests_fail_the_run_saying_what_to_install(
        tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty directory: neither tool is found
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "tests/test_standins_registry.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "not installed" in line]
    assert len(lines) == 1 and "apt-get install -y docker-registry skopeo" in lines[0]

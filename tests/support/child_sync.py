"""Run `ghcr2ecr sync` in a child process, so its peak memory, stderr and exit code are its own.

The child prints its peak RSS as the last stderr line `PEAK_RSS_KIB=<n>`: VmHWM of /proc/self/status,
which starts afresh at exec (getrusage's ru_maxrss would carry the forking pytest's own size over).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_CHILD = (
    "import sys\n"
    "from chalicelib import cli\n"
    "try:\n"
    "    code = cli.main(sys.argv[1:])\n"
    "finally:\n"
    "    hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
    "    sys.stderr.write(f'PEAK_RSS_KIB={hwm[0] if hwm else 0}\\n')\n"
    "sys.exit(code)\n"
)


@dataclass
class ChildRun:
    """What one child sync did: exit code, its stderr lines, the --report JSON and its peak RSS."""

    code: int
    lines: list[str]
    report: dict
    peak_rss_mib: float

    @property
    def text(self) -> str:
        """Return everything the run printed and reported, for secret searches."""
        return "\n".join(self.lines) + json.dumps(self.report)


def run_child_sync(args: Sequence[str], env: Mapping[str, str], workdir: Path, timeout: float = 60.0) -> ChildRun:
    """Run `ghcr2ecr sync ARGS --report FILE` in a fresh interpreter with exactly `env` (plus PATH)."""
    report = workdir / "report.json"
    child_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env}
    done = subprocess.run([sys.executable, "-c", _CHILD, "sync", *args, "--report", str(report)], cwd=ROOT,
                          env=child_env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    lines = done.stderr.splitlines()
    peak = next((int(line.split("=", 1)[1]) for line in reversed(lines) if line.startswith("PEAK_RSS_KIB=")), 0)
    lines = [line for line in lines if not line.startswith("PEAK_RSS_KIB=")]
    document = json.loads(report.read_text()) if report.exists() else {}
    return ChildRun(done.returncode, lines, document, peak / 1024)

"""The console script's exit: the build's commands skip the interpreter's teardown, losing no output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _entry(command: str, body: str) -> subprocess.CompletedProcess[str]:
    """Run cli.entry() for `command` in a fresh interpreter, with main() replaced by `body`."""
    code = (
        "import atexit, sys\n"
        "from chalicelib import cli\n"
        "atexit.register(lambda: print('atexit ran', file=sys.stderr))\n"
        f"def main(argv):\n{body}\n"
        "cli.main = main\n"
        f"sys.argv = ['ghcr2ecr', {command!r}]\n"
        "cli.entry()\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_sync_exits_with_its_code_and_every_byte_of_its_output() -> None:
    done = _entry("sync", "    print('x' * 100_000); print('said', file=sys.stderr, end=''); return 3")
    assert done.returncode == 3
    assert done.stdout == "x" * 100_000 + "\n"  # block-buffered into a pipe: flushed before the exit
    assert done.stderr == "said"  # and the teardown, atexit included, is skipped


def test_other_commands_exit_normally_with_atexit() -> None:
    done = _entry("demo", "    print('started'); return 1")
    assert (done.returncode, done.stdout, done.stderr.strip()) == (1, "started\n", "atexit ran")


def test_the_console_script_and_python_m_use_entry() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'ghcr2ecr = "chalicelib.cli:entry"' in pyproject
    done = subprocess.run([sys.executable, "-m", "chalicelib.cli", "sync", "nowhere", "x/y", "--tag", "v1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "nowhere" in done.stderr

"""buildspec/buildspec.yml: runs `ghcr2ecr run-job` from the bundle, revokes the token in `finally`, prints the report.

The commands are run here with bash, as CodeBuild does (stop at the first failing command, then `finally`),
with `python3` a shim that records its arguments and runs this venv's Python.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.build import revoke_token as revoke
from chalicelib.build.job import BuildJob, Target
from chalicelib.github import revoke as revocation
from chalicelib.jobs import Selection
from standins import codebuild
from standins.github import GitHubStandIn

ROOT = Path(__file__).resolve().parents[2]
SPEC = codebuild.load_buildspec()


def run_phase(env: dict[str, str], shell: str = "bash") -> tuple[int, str]:
    """Run the build phase like CodeBuild, asserting that every `finally` command passed."""
    result = codebuild.run_build_phase(SPEC, env, shell=shell, capture=True)
    assert result.finally_failed is None, f"a finally command failed: {result.finally_failed}"
    return result.status, result.output


@pytest.fixture
def build_env(tmp_path: Path, github: GitHubStandIn) -> dict[str, Any]:
    """A build environment as StartBuild + CodeBuild would give it, the token already resolved from SSM."""
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    calls = tmp_path / "python3-calls"
    (shim_dir / "python3").write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\nexec "{sys.executable}" "$@"\n')
    (shim_dir / "python3").chmod(0o755)
    github.add_installation(9, "octo-org", 1001)
    from chalicelib.github.app import GitHubApp

    token = GitHubApp(str(github.app_id), github.private_key_pem, github.url).mint_token(9, None, {"packages": "read"})
    env = {
        "PATH": f"{shim_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
        # http:// to a non-loopback host: the sync refuses at once, a fast stand-in for a failed copy
        "GHCR2ECR_JOB": BuildJob("webhook", "d-1", 9, "octo-org", Selection("sha256:" + "a" * 64, "v1"), (Target(
            "octo-org/app", "http://ghcr.invalid/octo-org/app", "http://ecr.invalid/ghcr/octo-org/app", 1001, "app",
            None, True),)).to_json(),
        "GITHUB_API_URL": github.url, "GHCR2ECR_INSTALLATION_ID": "9", "GHCR2ECR_SOURCE_TOKEN": token.value,
    }
    return {"env": env, "calls": calls, "token": token.value}


def test_the_buildspec_fits_lambda_and_ec2_compute() -> None:
    assert SPEC["version"] == 0.2
    text = (ROOT / "buildspec" / "buildspec.yml").read_text()
    for forbidden in ("on-failure", "runtime-versions", "docker", "sudo", "pip install", "curl ", "wget ",
                      "privileged"):
        assert forbidden not in text.split("version: 0.2", 1)[1], forbidden
    commands = [c for phase in SPEC["phases"].values() for k in ("commands", "finally") for c in phase.get(k, [])]
    assert all(isinstance(c, str) for c in commands)
    assert any("chalicelib.cli run-job" in c for c in SPEC["phases"]["build"]["commands"])
    assert any("chalicelib.cli revoke-token" in c for c in SPEC["phases"]["build"]["finally"])
    assert all('PYTHONPATH="${CODEBUILD_SRC_DIR:-$PWD}/vendor:' in c for c in commands if "python3" in c)


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_a_failed_copy_still_revokes_the_token(build_env: dict[str, Any], github: GitHubStandIn, shell: str) -> None:
    status, output = run_phase(build_env["env"], shell)
    assert status != 0
    minted = github.token(build_env["token"])
    assert minted is not None and minted.revoked
    assert "no report" in output or '"packages"' in output  # the job's report is printed
    assert build_env["token"] not in output


def test_the_build_runs_the_job_with_a_report_file(build_env: dict[str, Any]) -> None:
    env = build_env["env"]
    status, output = run_phase(env)
    [call] = [line.split() for line in build_env["calls"].read_text().splitlines() if "run-job" in line]
    assert call[:3] == ["-m", "chalicelib.cli", "run-job"]
    assert call[call.index("--report") + 1].startswith(env["TMPDIR"])
    assert status == 1 and '"status": "failed"' in output  # the report is printed: the copy could not start


def test_a_build_without_a_job_is_a_usage_error(build_env: dict[str, Any]) -> None:
    env = {k: v for k, v in build_env["env"].items() if k != "GHCR2ECR_JOB"}
    status, output = run_phase(env)
    assert status == 2 and "GHCR2ECR_JOB is not a build job" in output


def test_the_report_is_printed_when_the_sync_wrote_one(build_env: dict[str, Any]) -> None:
    env = build_env["env"]
    report = Path(env["TMPDIR"]) / "ghcr2ecr-report.json"
    # A python3 that "copies" by writing the report, to check the printing without a registry.
    fake = Path(env["TMPDIR"]) / "bin" / "python3"
    fake.write_text(f'#!/bin/sh\ncase "$*" in *" run-job "*) echo \'{{"manifests_copied": 3}}\' > "{report}";; '
                    f'*) exec "{sys.executable}" "$@";; esac\n')
    status, output = run_phase(env)
    assert status == 0 and '{"manifests_copied": 3}' in output


def test_revoke_token_treats_401_as_done_and_never_prints_the_token(github: GitHubStandIn, capsys,
                                                                    monkeypatch) -> None:
    github.add_installation(9, "octo-org", 1001)
    from chalicelib.github.app import GitHubApp

    token = GitHubApp(str(github.app_id), github.private_key_pem, github.url).mint_token(9, None, {"packages": "read"})
    monkeypatch.setenv("GHCR2ECR_SOURCE_TOKEN", token.value)
    args = type("Args", (), {"github_api_url": github.url})()
    assert revoke.main(args) == 0
    assert revoke.main(args) == 0  # 401 now: already revoked
    captured = capsys.readouterr()
    assert "revoked" in captured.err and "already invalid" in captured.err
    assert token.value not in captured.out + captured.err


def test_revoke_token_retries_server_errors_then_reports_failure(github: GitHubStandIn, capsys, monkeypatch) -> None:
    monkeypatch.setenv("GHCR2ECR_SOURCE_TOKEN", "ghs_whatever")
    monkeypatch.setattr(revocation.time, "sleep", lambda _s: None)
    github.inject("/installation/token", status=502, count=3)
    args = type("Args", (), {"github_api_url": github.url})()
    assert revoke.main(args) == 1
    assert len([r for r in github.requests if r.method == "DELETE"]) == 3
    assert "ghs_whatever" not in capsys.readouterr().err


def test_revoke_token_without_a_token_does_nothing(monkeypatch) -> None:
    monkeypatch.delenv("GHCR2ECR_SOURCE_TOKEN", raising=False)
    assert revoke.main(type("Args", (), {"github_api_url": None})()) == 0

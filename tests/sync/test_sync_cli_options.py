"""`ghcr2ecr sync --aliases / --deadline / --budget`: usage errors exit 2; defaults from the environment."""

from __future__ import annotations

import pytest

from chalicelib.cli import main
from chalicelib.sync.cli import default_budget, default_deadline

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(("argv", "message"), [
    (["--aliases", "--tags", "v*"], "--aliases needs --digest or --tag"),
    (["--digest", DIGEST, "--deadline", "0"], "--deadline must be"),
    (["--digest", DIGEST, "--budget", "-1"], "--budget must be"),
])
def test_usage_errors_exit_2_with_the_reason(argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODEBUILD_BUILD_ID", raising=False)
    assert main(["sync", "ghcr.io/o/p", "127.0.0.1:5000/x", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_malformed_setting_is_a_usage_error_naming_it(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHCR2ECR_SYNC_BUDGET", "lots")
    assert main(["sync", "ghcr.io/o/p", "127.0.0.1:5000/x", "--digest", DIGEST]) == 2
    assert "GHCR2ECR_SYNC_BUDGET must be a whole number" in capsys.readouterr().err


def test_the_deadline_defaults_fit_the_build_timeout() -> None:
    assert default_deadline({}, None) is None  # a person's run has no deadline unless asked
    assert default_deadline({"CODEBUILD_BUILD_ID": "b:1"}, None) == 15 * 60 - 90  # Lambda compute: 15 minutes
    assert default_deadline({"CODEBUILD_BUILD_ID": "b:1", "GHCR2ECR_BUILD_TIMEOUT_MINUTES": "120"}, None) == 7110
    assert default_deadline({"GHCR2ECR_DEADLINE_SECONDS": "30", "GHCR2ECR_BUILD_TIMEOUT_MINUTES": "120"}, None) == 30
    assert default_deadline({"GHCR2ECR_DEADLINE_SECONDS": "30"}, 5.0) == 5.0
    assert default_budget({}, None) == 10_000 and default_budget({"GHCR2ECR_SYNC_BUDGET": "50"}, None) == 50

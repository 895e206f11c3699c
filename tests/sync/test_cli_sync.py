"""`ghcr2ecr sync` as the contract states it: exit 0/1/2, a one-line cause, the JSON report, progress."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from chalicelib.cli import main
from chalicelib.sync.copy import Stats
from chalicelib.sync.engine import Report
from chalicelib.sync.cli import LineFormat, StderrProgress, summary
from standins.ghcr_ecr import EcrStandin, GhcrStandin
from standins.push import PushedImage
from tests.support.engine_helpers import ecr_env, ghcr_env, secrets_of


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _set(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name in ("CODEBUILD_BUILD_ID", "GHCR2ECR_LOG_FORMAT", "GHCR2ECR_DELIVERY_ID", "GHCR2ECR_INSTALLATION_ID",
                 "GHCR2ECR_SOURCE_TOKEN", "GHCR2ECR_SOURCE_FALLBACK_TOKEN", "GHCR2ECR_SOURCE_USERNAME",
                 "GHCR2ECR_DEST_USERNAME", "GHCR2ECR_DEST_PASSWORD", "GHCR2ECR_DEST_ECR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(("argv", "message"), [
    (["http://ghcr.io/o/p", "127.0.0.1:5000/x", "--tag", "v1"], "plain http:// is accepted only for loopback"),
    (["ghcr.io/o/p", "127.0.0.1:5000/x"], "nothing to copy"),
    (["ghcr.io/o/p", "127.0.0.1:5000/x", "--tags", "v*,,x"], "empty item"),
    (["ghcr.io/o/p", "127.0.0.1:5000/x", "--digest", "sha256:abc"], "is not a sha256 digest"),
    (["ghcr.io/o/P", "127.0.0.1:5000/x", "--tag", "v1"], "not a valid repository name"),
    (["ghcr.io/o/p:v1", "127.0.0.1:5000/x", "--tag", "v1"], "give the repository only"),
    (["ghcr.io/o/p", "127.0.0.1:5000/x", "--tag=-bad"], "is not a valid tag"),
])
def test_usage_errors_exit_2_with_the_reason(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sync", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.registry
def test_a_successful_sync_exits_0_and_writes_the_report(ghcr: GhcrStandin, ecr: EcrStandin,
        pushed_index: PushedImage, repo_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _set(monkeypatch, {**ghcr_env(ghcr), **ecr_env(ecr)})
    report_path = tmp_path / "report.json"
    code = main(["sync", f"http://{ghcr.host}/{repo_name}", f"http://{ecr.host}/{repo_name}", "--tag", "v1",
                 "--report", str(report_path), "--quiet"])
    assert code == 0
    assert capsys.readouterr().err == ""
    report = json.loads(report_path.read_text())
    assert report["ok"] is True
    assert report["manifests"] == {"copied": 4, "skipped": 0}
    assert report["blobs"] == {"copied": len(pushed_index.blobs), "skipped": 0, "mounted": 0}
    assert report["bytes_moved"] == pushed_index.blob_bytes
    assert report["tags"] == {"set": ["v1"], "unchanged": [], "conflicts": [], "skipped": {}, "aliases": [],
                              "unchecked": []}
    assert report["left_undone"] == [] and report["notes"] == [] and report["warnings"] == []
    assert report["digests"] == {"v1": pushed_index.digest}
    assert report["errors"] == [] and report["duration_seconds"] >= 0
    assert report["credentials_tried"] == ["installation token", "anonymous", "fallback token"]


@pytest.mark.registry
def test_a_denied_sync_exits_1_with_one_line_and_no_secret_anywhere(ghcr: GhcrStandin, ecr: EcrStandin,
        pushed_index: PushedImage, repo_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _set(monkeypatch, {**ghcr_env(ghcr, fallback=False), **ecr_env(ecr)})
    report_path = tmp_path / "report.json"
    code = main(["sync", f"http://{ghcr.host}/{repo_name}", f"http://{ecr.host}/{repo_name}", "--tag", "v1",
                 "--report", str(report_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("ghcr2ecr sync: access to ")
    assert "tried: installation token, anonymous" in err
    text = report_path.read_text()
    assert json.loads(text)["ok"] is False
    for secret in secrets_of(ghcr, ecr):
        assert secret not in err and secret not in text


@pytest.mark.registry
def test_a_registry_that_is_gone_exits_1_with_one_line(ghcr: GhcrStandin, pushed_index: PushedImage,
        repo_name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _set(monkeypatch, ghcr_env(ghcr))
    waits: list[float] = []
    monkeypatch.setattr("chalicelib.sync.engine.time.sleep", waits.append)  # the retries happen, without the waiting
    gone = "127.0.0.1:9"  # the discard port: nothing listens there
    code = main(["sync", f"http://{ghcr.host}/{repo_name}", f"http://{gone}/{repo_name}", "--tag", "v1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "destination registry unreachable after 5 attempt(s)" in err
    assert waits == [0.5, 1.0, 2.0, 4.0]


def test_progress_prints_plain_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = StderrProgress(stream, interval=3600)  # the test ticks; the thread never does
    stats = Stats()
    progress.start(stats)
    progress.phase("copying")
    stats.add("bytes_planned", 2_000_000)
    stats.add("bytes_moved", 1_500_000)
    progress.tick()
    progress.stop()
    lines = stream.getvalue().splitlines()
    assert lines and all(line.startswith("ghcr2ecr sync: ") for line in lines)
    assert "copying: 1.5 MB of 2.0 MB moved" in lines[-1]
    assert "\r" not in stream.getvalue()


def test_a_successful_run_ends_with_a_summary_line() -> None:
    report = Report(source="a/b", destination="c/d", tags_set=["v1"], tags_unchanged=["latest"])
    report.stats.add("bytes_moved", 1500)
    report.stats.add("blobs_copied", 2)
    assert summary(report) == ("done in 0.0s: 0 manifest(s) and 2 blob(s) copied (1.5 KB), 0 mounted, "
                               "0 already there; tags set: v1; 1 unchanged")


def test_the_summary_names_a_skipped_signature_tag_and_why() -> None:
    report = Report(source="a/b", destination="c/d", tags_skipped={"sha256-ab.sig": "signed image not mirrored"})
    assert summary(report).endswith("tags set: none; 0 unchanged; sha256-ab.sig skipped: signed image not mirrored")


@pytest.mark.registry
def test_without_quiet_the_run_logs_credential_steps_and_ends_with_the_summary(
        ghcr: GhcrStandin, ecr: EcrStandin, pushed_index: PushedImage, repo_name: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _set(monkeypatch, {**ghcr_env(ghcr), **ecr_env(ecr)})
    assert main(["sync", f"http://{ghcr.host}/{repo_name}", f"http://{ecr.host}/{repo_name}", "--tag", "v1"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert "source credential 'installation token' denied" in lines[0]
    assert lines[-1].startswith("ghcr2ecr sync: done in ") and "tags set: v1" in lines[-1]


BUILD_IDS = {"CODEBUILD_BUILD_ID": "ghcr2ecr-dev-copy:1", "GHCR2ECR_DELIVERY_ID": "d-1",
             "GHCR2ECR_INSTALLATION_ID": "42"}


def _json_lines(err: str) -> list[dict]:
    """Parse stderr as JSON lines, failing on any line that is not one."""
    return [json.loads(line) for line in err.splitlines()]


def test_in_a_build_the_one_line_cause_is_a_json_line_with_the_syncs_ids(tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _set(monkeypatch, {**BUILD_IDS, "GHCR2ECR_DEST_ECR": "true"})

    class Broken:
        class exceptions:  # noqa: N801 - boto3's attribute name
            RepositoryAlreadyExistsException = KeyError

        def create_repository(self, **kwargs: object) -> None:
            raise RuntimeError("unexpected")

    monkeypatch.setattr("chalicelib.registry.ecr.ecr_client", lambda region: Broken())
    digest = "sha256:" + "a" * 64
    assert main(["sync", "http://127.0.0.1:9/o/p", "http://127.0.0.1:9/ghcr/o/p", "--digest", digest,
                 "--tag", "v1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    [line] = _json_lines(err)
    assert {k: line[k] for k in ("level", "message", "delivery", "installation", "package", "digest", "tag")} == {
        "level": "error", "message": "internal error: RuntimeError: unexpected", "delivery": "d-1",
        "installation": "42", "package": "http://127.0.0.1:9/o/p", "digest": digest, "tag": "v1"}


def test_log_format_json_applies_to_usage_errors_too(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CODEBUILD_BUILD_ID", raising=False)
    monkeypatch.setenv("GHCR2ECR_LOG_FORMAT", "json")
    assert main(["sync", "ghcr.io/o/p", "127.0.0.1:5000/x"]) == 2
    [line] = _json_lines(capsys.readouterr().err)
    assert line["level"] == "error" and "nothing to copy" in line["message"] and line["package"] == "ghcr.io/o/p"


def test_progress_lines_become_json_lines_in_a_build() -> None:
    stream = _Tty()
    progress = StderrProgress(stream, interval=3600, lines=LineFormat(True, {"delivery": "d-1"}))
    stats = Stats()
    progress.start(stats)
    progress.phase("copying")
    progress.tick()
    progress.stop()
    lines = _json_lines(stream.getvalue())
    assert lines and lines[-1]["message"].startswith("copying: ") and lines[-1]["delivery"] == "d-1"
    assert "\r" not in stream.getvalue()  # never an in-place line in a build log, even on a terminal


@pytest.mark.registry
def test_in_a_build_every_stderr_line_is_json_with_the_ids_and_no_secret(
        ghcr: GhcrStandin, ecr: EcrStandin, pushed_index: PushedImage, repo_name: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _set(monkeypatch, {**ghcr_env(ghcr), **ecr_env(ecr), **BUILD_IDS})
    source = f"http://{ghcr.host}/{repo_name}"
    assert main(["sync", source, f"http://{ecr.host}/{repo_name}", "--digest", pushed_index.digest,
                 "--tag", "v1"]) == 0
    err = capsys.readouterr().err
    lines = _json_lines(err)
    assert "source credential 'installation token' denied" in lines[0]["message"]
    assert lines[-1]["message"].startswith("done in ") and lines[-1]["level"] == "info"
    for line in lines:
        assert (line["delivery"], line["installation"], line["package"], line["digest"], line["tag"]) == (
            "d-1", "42", source, pushed_index.digest, "v1")
    for secret in secrets_of(ghcr, ecr):
        assert secret not in err

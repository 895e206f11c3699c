"""The sync's pure parts: request validation, the report and its one-line cause, conflict recognition."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from chalicelib.sync import engine as sync
from chalicelib.cli import main
from chalicelib.registry.errors import RegistryError
from chalicelib.sync.tagging import immutable_conflict
from chalicelib.sync.cli import StderrProgress


def test_a_request_accepts_loopback_http_and_registry_hosts() -> None:
    request = sync.SyncRequest.build("ghcr.io/octo/app", "http://127.0.0.1:5000/ghcr/octo/app", tags=["v1", "v1"])
    assert str(request.source) == "ghcr.io/octo/app" and request.source.base_url == "https://ghcr.io"
    assert request.dest.base_url == "http://127.0.0.1:5000" and request.tags == ("v1",)


def test_an_empty_tag_argument_asks_for_no_tag() -> None:
    request = sync.SyncRequest.build("ghcr.io/o/p", "localhost:5000/o/p", tags=[""], digest="sha256:" + "a" * 64)
    assert request.tags == ()


@pytest.mark.parametrize("dest", ["http://10.0.0.1/x", "http://registry.example.com/x"])
def test_plain_http_is_refused_for_other_hosts(dest: str) -> None:
    with pytest.raises(ValueError, match="only for loopback"):
        sync.SyncRequest.build("ghcr.io/o/p", dest, tags=["v1"])


def test_the_report_json_has_the_contract_fields_and_a_one_line_cause() -> None:
    report = sync.Report(source="ghcr.io/o/p", destination="r/o/p")
    assert report.ok and report.exit_code == 0 and report.cause() == ""
    report.errors += ["GET x: HTTP 500;\n  UNKNOWN: boom", "second"]
    document = report.to_dict()
    assert set(document) >= {"ok", "manifests", "blobs", "bytes_moved", "tags", "duration_seconds", "errors"}
    assert document["blobs"] == {"copied": 0, "skipped": 0, "mounted": 0}
    assert report.exit_code == 1
    assert report.cause() == "GET x: HTTP 500; UNKNOWN: boom (and 1 more problem(s); see --report)"


def test_ecr_immutable_refusals_are_recognised_as_conflicts() -> None:
    ecr = RegistryError("PUT", "https/x", 400, [{"code": "TAG_INVALID", "message": (
        "The image tag 'v1' already exists in the 'app' repository and cannot be overwritten because the "
        "repository is immutable.")}])
    assert immutable_conflict(ecr)
    assert not immutable_conflict(RegistryError("PUT", "x", 400, [{"code": "TAG_INVALID", "message": "bad tag"}]))
    assert not immutable_conflict(RegistryError("PUT", "x", 500))


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


NEVER = 3600.0  # an interval the background thread never reaches in a test: the test ticks itself


def test_on_a_terminal_progress_rewrites_one_line() -> None:
    stream = _Tty()
    progress = StderrProgress(stream, interval=NEVER)
    stats = sync.Stats()
    progress.start(stats)
    stats.add("bytes_moved", 10)
    progress.tick()
    progress.tick()
    progress.stop()
    text = stream.getvalue()
    assert text.startswith("\r\x1b[2K") and text.endswith("\n") and text.count("\n") == 1
    assert text.count("\r\x1b[2K") == 3 and "starting: 10 B moved" in text


def test_the_progress_thread_ticks_by_itself() -> None:
    stream = _Tty()
    progress = StderrProgress(stream, interval=0.01)
    progress.start(sync.Stats())
    deadline = time.monotonic() + 60  # generous: only waits for the first line, never bounds how fast it comes
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    progress.stop()
    assert stream.getvalue().startswith("\r\x1b[2K") and stream.getvalue().endswith("\n")


def test_off_a_terminal_a_tick_prints_only_when_more_than_the_clock_changed() -> None:
    stream = io.StringIO()
    progress = StderrProgress(stream, interval=NEVER)
    stats = sync.Stats()
    progress.start(stats)
    progress.tick()
    progress.tick()
    stats.add("bytes_moved", 10)
    progress.tick()
    progress.stop()
    lines = stream.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == ["ghcr2ecr sync: starting: 0 B moved",
                                                     "ghcr2ecr sync: starting: 10 B moved"]


class _BrokenEcr:
    """An ECR client whose CreateRepository fails with something no one expected."""

    class exceptions:  # noqa: N801 - boto3's attribute name
        class RepositoryAlreadyExistsException(Exception):
            """Never raised here."""

    def __init__(self, message: str) -> None:
        self.message = message

    def create_repository(self, **kwargs: object) -> None:
        raise RuntimeError(self.message)


def test_an_unexpected_exception_is_recorded_as_an_internal_error_without_secrets() -> None:
    request = sync.SyncRequest.build("http://127.0.0.1:9/o/p", "http://127.0.0.1:9/ghcr/o/p", tags=["v1"])
    env = {"GHCR2ECR_SOURCE_TOKEN": "ghs_SECRET1", "GHCR2ECR_DEST_ECR": "true",
           "GHCR2ECR_SOURCE_FALLBACK_TOKEN": '{"username": "u", "accessToken": "ghp_SECRET2"}'}
    broken = _BrokenEcr("boom ghs_SECRET1 ghp_SECRET2 at https://cdn.test/b?X-Amz-Signature=SIG3\nsecond line")
    report = sync.run(request, env=env, ecr_client=broken)
    assert report.exit_code == 1
    assert report.errors == ["internal error: RuntimeError: boom <redacted> <redacted> at https://cdn.test/b "
                             "second line"]
    assert report.cause() == report.errors[0]


def test_the_cli_turns_an_internal_error_into_exit_1_one_line_and_a_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GHCR2ECR_DEST_ECR", "true")
    monkeypatch.setattr("chalicelib.registry.ecr.ecr_client", lambda region: _BrokenEcr("unexpected"))
    report_path = tmp_path / "report.json"
    code = main(["sync", "http://127.0.0.1:9/o/p", "http://127.0.0.1:9/ghcr/o/p", "--tag", "v1",
                 "--report", str(report_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err == "ghcr2ecr sync: internal error: RuntimeError: unexpected\n"
    assert json.loads(report_path.read_text())["errors"] == ["internal error: RuntimeError: unexpected"]


@pytest.mark.parametrize(("text", "host", "hostname"), [
    ("http://[::1]:5000/o/p", "[::1]:5000", "::1"),
    ("http://[::1]/o/p", "[::1]", "::1"),
    ("[2001:db8::1]:443/o/p", "[2001:db8::1]:443", "2001:db8::1"),
])
def test_bracketed_ipv6_hosts_are_accepted(text: str, host: str, hostname: str) -> None:
    request = sync.SyncRequest.build(text, "ghcr.io/o/p", tags=["v1"])
    assert request.source.host == host and request.source.hostname == hostname


@pytest.mark.parametrize("text", ["http://[2001:db8::1]:5000/o/p", "[::1/o/p", "[zz]:5000/o/p", "[::1]x/o/p",
                                  "::1:5000/o/p", "[::1]:/o/p"])
def test_malformed_or_remote_plain_http_ipv6_hosts_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        sync.SyncRequest.build(text, "ghcr.io/o/p", tags=["v1"])


def test_the_cli_accepts_an_ipv6_loopback_registry(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("chalicelib.sync.engine.time.sleep", lambda seconds: None)
    code = main(["sync", "http://[::1]:9/o/p", "http://[::1]:9/x/p", "--tag", "v1", "--quiet"])
    assert code == 1 and "unreachable" in capsys.readouterr().err  # not a usage error: nothing listens there


def test_the_oci_grammar_is_exported_for_other_modules() -> None:
    from chalicelib.registry.reference import DIGEST_PATTERN, REPOSITORY_PATTERN, TAG_PATTERN

    assert TAG_PATTERN.fullmatch("v1.2.3_rc-1") and not TAG_PATTERN.fullmatch("-v1")
    assert not TAG_PATTERN.fullmatch("a" * 129)
    assert DIGEST_PATTERN.fullmatch("sha256:" + "0" * 64) and not DIGEST_PATTERN.fullmatch("sha256:" + "A" * 64)
    assert REPOSITORY_PATTERN.fullmatch("octo-org/app__x/y.z") and not REPOSITORY_PATTERN.fullmatch("Octo/app")

"""The sync's pure parts: request validation, the report and its one-line cause, conflict recognition."""

from __future__ import annotations

import io
import time

import pytest

from chalicelib import sync
from chalicelib.registry.errors import RegistryError
from chalicelib.registry.tagging import immutable_conflict
from chalicelib.sync_cli import StderrProgress


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


def test_on_a_terminal_progress_rewrites_one_line() -> None:
    stream = _Tty()
    progress = StderrProgress(stream, interval=0.01)
    stats = sync.Stats()
    progress.start(stats)
    stats.add("bytes_moved", 10)
    time.sleep(0.05)
    progress.stop()
    text = stream.getvalue()
    assert text.startswith("\r\x1b[2K") and text.endswith("\n") and text.count("\n") == 1

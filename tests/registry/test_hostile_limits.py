"""A hostile or broken registry cannot exhaust memory or time: capped reads, deadlines, minimum throughput.

The memory cases run `ghcr2ecr sync` in a child process and read its peak RSS; every case uses small
limits (GHCR2ECR_REQUEST_DEADLINE and friends) so it ends in seconds.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from standins import images
from standins.hostile import HostileRegistry
from standins.hostile_behaviours import MB, declared, drip, endless, gzip_bomb, silent
from tests.support.child_sync import ROOT, ChildRun, run_child_sync
from tests.support.engine_helpers import run_sync

pytestmark = pytest.mark.timeout(60)
PEAK_RSS_MIB = 200
SHORT = {"GHCR2ECR_REQUEST_DEADLINE": "1", "GHCR2ECR_REQUEST_GIVE_UP": "3"}
IMAGE = images.single_image(seed="hostile-limits")


@pytest.fixture
def source() -> Iterator[HostileRegistry]:
    """A source serving one small image at v1."""
    with HostileRegistry("octo/app").serve(IMAGE, ["v1"]) as server:
        yield server


@pytest.fixture
def dest() -> Iterator[HostileRegistry]:
    """A destination that accepts pushes to dst/app and records every request."""
    with HostileRegistry("dst/app") as server:
        yield server


def _child(source: HostileRegistry, dest: HostileRegistry, tmp_path: Path, *flags: str,
           env: dict[str, str] | None = None) -> ChildRun:
    return run_child_sync([f"http://{source.host}/octo/app", f"http://{dest.host}/dst/app", *flags],
                          {**SHORT, **(env or {})}, tmp_path)


def _outside(dest: HostileRegistry) -> list[str]:
    return [p for p in dest.paths() if not (p.startswith("/v2/dst/app/") or p == "/v2/")]


@pytest.mark.parametrize(("route", "behaviour", "flags", "cause"), [
    ("/tags/list", endless(200), ["--all-tags"], "larger than 4194304 bytes; refused"),
    ("/manifests/", endless(400, prefix=b'{"errors": [{"code": "X", "message": "'), ["--tag", "v1"], "HTTP 400"),
    ("/manifests/", endless(401, headers={"WWW-Authenticate": 'Basic realm="r"'}), ["--tag", "v1"], "denied"),
    ("/tags/list", gzip_bomb(200), ["--all-tags"], "larger than 4194304 bytes; refused"),
    ("/manifests/", gzip_bomb(400), ["--tag", "v1"], "HTTP 400"),
    ("/manifests/", gzip_bomb(200), ["--tag", "v1"], "manifest larger than 4194304 bytes"),
], ids=["endless-tags-list", "endless-400", "endless-401", "gzip-bomb-tags-list", "gzip-bomb-400",
        "gzip-bomb-manifest"])
def test_an_endless_body_is_cut_at_its_cap_and_memory_stays_flat(source: HostileRegistry, dest: HostileRegistry,
        tmp_path: Path, route: str, behaviour: object, flags: list[str], cause: str) -> None:
    source.on("GET", route, behaviour)  # type: ignore[arg-type]
    run = _child(source, dest, tmp_path, *flags)
    print(f"peak RSS {run.peak_rss_mib:.0f} MiB; {run.lines[-1]}")
    assert run.peak_rss_mib < PEAK_RSS_MIB
    assert run.code == 1 and cause in run.lines[-1], run.lines
    assert run.lines[-1].count("\n") == 0 and len(run.lines[-1]) < 1000
    assert _outside(dest) == []


@pytest.mark.parametrize("behaviour", [declared(200, 200 * MB), endless(200, prefix=b'{"token": "')],
                         ids=["200MB-declared", "endless"])
def test_a_huge_token_answer_is_refused_without_reading_it(dest: HostileRegistry, tmp_path: Path,
        behaviour: object) -> None:
    with HostileRegistry("octo/app", token_auth=True).serve(IMAGE, ["v1"]) as source:
        source.on("GET", "^/token", behaviour)  # type: ignore[arg-type]
        run = _child(source, dest, tmp_path, "--tag", "v1")
    print(f"peak RSS {run.peak_rss_mib:.0f} MiB; {run.lines[-1]}")
    assert run.peak_rss_mib < PEAK_RSS_MIB
    assert run.code == 1 and "larger than 1048576 bytes; refused" in run.lines[-1], run.lines


@pytest.mark.parametrize(("route", "behaviour", "flags"), [
    ("/manifests/", silent(), {"tags": ["v1"]}),
    ("/tags/list", drip(0.2), {"all_tags": True}),
    ("/manifests/", drip(0.2), {"tags": ["v1"]}),
], ids=["silent-manifest", "dripping-tags-list", "dripping-manifest"])
def test_a_silent_or_dripping_server_is_given_up_within_the_budget(source: HostileRegistry, dest: HostileRegistry,
        route: str, behaviour: object, flags: dict) -> None:
    source.on("GET", route, behaviour)  # type: ignore[arg-type]
    started = time.monotonic()
    report = run_sync(source.host, "octo/app", dest.host, "dst/app", dict(SHORT), **flags)
    print(f"gave up after {time.monotonic() - started:.1f}s: {report.cause()}")
    assert not report.ok
    assert "unreachable after" in report.cause() or "within its deadline" in report.cause(), report.cause()
    assert "deadline" in report.cause() or "GHCR2ECR_REQUEST_GIVE_UP" in report.cause()
    assert _outside(dest) == [] and not any("/manifests/v1" in p for p in dest.paths())


def test_a_blob_under_the_minimum_throughput_is_abandoned_and_its_upload_cancelled(source: HostileRegistry,
        dest: HostileRegistry) -> None:
    layer = max(IMAGE.all_blobs().values(), key=lambda b: b.size)
    source.on("GET", f"/blobs/{layer.digest}$", drip(0.05))
    env = {**SHORT, "GHCR2ECR_BLOB_MIN_RATE": "100000", "GHCR2ECR_BLOB_RATE_WINDOW": "0.5"}
    report = run_sync(source.host, "octo/app", dest.host, "dst/app", env, tags=["v1"])
    assert not report.ok and "under the minimum 100000 (GHCR2ECR_BLOB_MIN_RATE); abandoned" in report.cause()
    assert layer.digest not in dest.blobs and "v1" not in dest.manifests
    assert len(dest.uploads_deleted) >= 1  # every abandoned attempt's upload session was cancelled


def test_a_relative_upload_location_resolves_against_the_request_url(source: HostileRegistry,
        dest: HostileRegistry) -> None:
    dest.location = lambda upload: f"{upload}?_state=x"  # RFC 3986: relative to /v2/dst/app/blobs/uploads/
    report = run_sync(source.host, "octo/app", dest.host, "dst/app", dict(SHORT), tags=["v1"])
    assert report.ok, report.errors
    assert dest.manifests["v1"][1] == IMAGE.raw and set(IMAGE.all_blobs()) <= set(dest.blobs)
    assert _outside(dest) == []


def test_a_malformed_limit_setting_is_a_clear_error(source: HostileRegistry, dest: HostileRegistry) -> None:
    report = run_sync(source.host, "octo/app", dest.host, "dst/app", {"GHCR2ECR_REQUEST_DEADLINE": "soon"},
                      tags=["v1"])
    assert report.cause() == "GHCR2ECR_REQUEST_DEADLINE must be a positive number, not 'soon'"
    assert source.requests == [] and dest.requests == []


@pytest.mark.timeout(240)  # a loaded machine may take long to start the child; nothing here is timed
def test_a_stopped_run_cancels_its_open_upload(source: HostileRegistry, dest: HostileRegistry) -> None:
    layer = max(IMAGE.all_blobs().values(), key=lambda b: b.size)
    source.on("GET", f"/blobs/{layer.digest}$", drip(0.05))  # an upload that stays open while we stop the run
    # The blob's minimum-throughput window is made longer than the test, so the upload is still open at SIGTERM.
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **SHORT, "GHCR2ECR_BLOB_RATE_WINDOW": "600"}
    child = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "sync", f"http://{source.host}/octo/app",
                              f"http://{dest.host}/dst/app", "--tag", "v1", "--quiet"], cwd=ROOT, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        until = time.monotonic() + 120
        while time.monotonic() < until and child.poll() is None and not any(
                r.method == "PUT" and "/blobs/uploads/" in r.path for r in dest.requests):
            time.sleep(0.05)
        assert child.poll() is None, "the sync ended before its upload opened"
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=90)
    finally:
        child.kill()
    stuck = [r.path.split("/blobs/uploads/")[1].split("?")[0] for r in dest.requests
             if r.method == "PUT" and layer.digest.replace(":", "%3A") in r.path]
    assert child.returncode == 128 + signal.SIGTERM, err
    assert re.fullmatch(r"ghcr2ecr sync: stopped by SIGTERM: \d+ open upload\(s\) cancelled; no tag was set for "
                        "content not yet complete", err.splitlines()[-1])
    assert len(stuck) == 1 and stuck[0] in dest.uploads_deleted and "v1" not in dest.manifests


def test_a_silent_token_endpoint_is_given_up_within_the_same_budget(dest: HostileRegistry) -> None:
    with HostileRegistry("octo/app", token_auth=True).serve(IMAGE, ["v1"]) as source:
        source.on("GET", "^/token", silent())
        report = run_sync(source.host, "octo/app", dest.host, "dst/app", dict(SHORT), tags=["v1"])
    assert not report.ok and "GHCR2ECR_REQUEST_GIVE_UP" in report.cause(), report.cause()
    assert dest.requests == []

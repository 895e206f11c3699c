"""The build's report under its build id, and the markers that make each effect happen once (real moto S3)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from chalicelib import aws
from chalicelib.build import report_store
from tests.support.app_fixtures import AppEnv

BUCKET = "ghcr2ecr-test-reports"
BUILD = "ghcr2ecr-test-copy:7c4f1a2e-0b1c-4d5e-9f00-123456789abc"
ARN = f"arn:aws:codebuild:us-east-1:123456789012:build/{BUILD}"


@pytest.fixture
def bucket(app_env: AppEnv) -> str:
    app_env.boto("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.mark.parametrize("build_id", [BUILD, ARN])
def test_a_build_id_or_its_arn_names_one_key(build_id: str) -> None:
    assert report_store.report_key(build_id) == "reports/ghcr2ecr-test-copy/7c4f1a2e-0b1c-4d5e-9f00-123456789abc.json"
    assert report_store.marker_key(build_id, "log") == (
        "effects/ghcr2ecr-test-copy/7c4f1a2e-0b1c-4d5e-9f00-123456789abc/log")


@pytest.mark.parametrize("build_id", ["", "no-colon", "p:../../x", "p:a/b", "../p:1", f"{BUILD}\n"])
def test_anything_else_names_no_key(build_id: str) -> None:
    assert report_store.report_key(build_id) is None and report_store.marker_key(build_id, "log") is None


def test_the_build_stores_its_report_and_on_build_state_reads_it(bucket: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"ok": True, "packages": []}))
    monkeypatch.setenv("GHCR2ECR_REPORT_BUCKET", bucket)
    monkeypatch.setenv("CODEBUILD_BUILD_ID", BUILD)
    assert report_store.main(argparse.Namespace(file=str(report))) == 0
    assert report_store.load(bucket, ARN) == {"ok": True, "packages": []}


def test_no_report_file_or_no_bucket_is_fine_for_the_build(bucket: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEBUILD_BUILD_ID", BUILD)
    monkeypatch.delenv("GHCR2ECR_REPORT_BUCKET", raising=False)
    assert report_store.main(argparse.Namespace(file=str(tmp_path / "none.json"))) == 0
    monkeypatch.setenv("GHCR2ECR_REPORT_BUCKET", bucket)
    assert report_store.main(argparse.Namespace(file=str(tmp_path / "none.json"))) == 0
    assert report_store.load(bucket, ARN) is None


def test_an_oversized_or_broken_report_counts_as_none(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    key = report_store.report_key(BUILD)
    assert key is not None
    aws.s3().put(bucket, key, b"{not json")
    assert report_store.load(bucket, BUILD) is None
    monkeypatch.setattr(report_store, "REPORT_LIMIT", 10)
    aws.s3().put(bucket, key, json.dumps({"ok": True, "padding": "x" * 20}).encode())
    assert report_store.load(bucket, BUILD) is None


def test_an_effect_is_claimed_once(bucket: str) -> None:
    assert report_store.claim(bucket, ARN, "storage-records") is True
    assert report_store.claim(bucket, BUILD, "storage-records") is False  # the same build, retried
    assert report_store.claim(bucket, BUILD, "log") is True  # another effect

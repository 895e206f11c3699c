"""The pure side of reporting to tenants: request bodies, what the check run says, which storage records."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.github.app import check_login, split_repository
from chalicelib.outcome import check_output
from chalicelib.outcome import requests as reports
from chalicelib.outcome.check_output import FinalState
from chalicelib.outcome.storage_records import records_for

SHA = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
DEST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ghcr/octo-org/app"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def state(status: str = "SUCCEEDED", report: dict | None = None, tag: str = "v1.2.3") -> FinalState:
    return FinalState(status=status, source="ghcr.io/octo-org/app", destination=DEST, digest=DIGEST, tag=tag,
                      build_id="ghcr2ecr-prod-copy:1e3a", duration_seconds=7.0, report=report,
                      fallback_secret="ghcr2ecr/ghcr-pull/1001")


def report(**overrides: object) -> dict:
    data = {"ok": True, "bytes_moved": 12_345_678, "duration_seconds": 6.25,
            "tags": {"set": ["v1.2.3", "v1.2"], "unchanged": ["latest"], "conflicts": [], "skipped": {}},
            "digests": {"v1.2.3": DIGEST, "v1.2": DIGEST, "latest": DIGEST}, "errors": []}
    data.update(overrides)
    return data


# ---- request bodies (the paths they go to: tests/github/test_reporting_calls.py) -------------------
def test_a_check_run_is_created_queued_on_the_commit_with_its_name_and_external_id() -> None:
    body = reports.check_run(SHA, "attempt-1", reports.Output("t", "s"))
    assert body == {"name": "ghcr2ecr", "head_sha": SHA, "external_id": "attempt-1", "status": "queued",
                    "output": {"title": "t", "summary": "s"}}


def test_a_check_run_created_with_a_conclusion_is_completed_at_once() -> None:
    body = reports.check_run(SHA, "x", reports.Output("t", "s"), "failure", now=NOW)
    assert body["status"] == "completed" and body["conclusion"] == "failure"
    assert body["completed_at"] == "2026-12-01T12:00:00Z"


@pytest.mark.parametrize("repository", ["octo-org", "../x/y", "octo-org/..", "octo org/app", "a/b/c", "octo-org/"])
def test_only_a_repository_full_name_becomes_a_path(repository: str) -> None:
    with pytest.raises(ValueError, match="not a repository full name"):
        split_repository(repository)
    assert split_repository("Octo-Org/app") == ("Octo-Org", "app")


@pytest.mark.parametrize("sha", ["", "main", "v1.2.3", SHA.upper(), SHA[:39], SHA + "0"])
def test_a_revision_that_is_not_a_commit_sha_makes_no_check_run(sha: str) -> None:
    with pytest.raises(ValueError, match="not a commit sha"):
        reports.check_run(sha, "x", reports.Output("t", "s"))


def test_completing_sets_status_conclusion_time_and_output() -> None:
    body = reports.completion("timed_out", reports.Output("t", "s"), now=NOW)
    assert body == {"status": "completed", "conclusion": "timed_out", "completed_at": "2026-12-01T12:00:00Z",
                    "output": {"title": "t", "summary": "s"}}
    with pytest.raises(ValueError):
        reports.completion("stale", reports.Output("t", "s"))  # only GitHub sets it


def test_output_is_cut_to_githubs_limits() -> None:
    output = reports.Output("a\nlong   title " * 100, "x" * 70_000).to_json()
    assert len(output["summary"]) == reports.SUMMARY_LIMIT and "\n" not in output["title"]
    assert len(output["title"]) <= reports.TITLE_LIMIT


def test_a_storage_record_carries_the_fields_githubs_schema_allows() -> None:
    record = reports.StorageRecord(name="app", digest=DIGEST, version="v1.2.3", registry_url="https://r.example",
                                   repository="ghcr/octo-org/app", github_repository="app",
                                   artifact_url="https://console.example/app")
    assert reports.storage_record(record) == {
        "name": "app", "digest": DIGEST, "version": "v1.2.3", "registry_url": "https://r.example",
        "repository": "ghcr/octo-org/app", "github_repository": "app", "status": "active",
        "artifact_url": "https://console.example/app"}


def test_storage_record_fields_over_githubs_bounds_are_left_out_or_refused() -> None:
    long = reports.StorageRecord(name="app", digest=DIGEST, version="v" * 101, registry_url="https://r.example",
                                 repository="r" * 129, github_repository="app", artifact_url="https://" + "a" * 150)
    body = reports.storage_record(long)
    assert set(body) == {
        "name", "digest", "registry_url", "github_repository", "status"}
    for bad in ({"digest": "sha512:" + "a" * 128}, {"registry_url": "http://r.example"},
                {"github_repository": "octo-org/app"}):
        with pytest.raises(ValueError):
            reports.storage_record(reports.StorageRecord(**{**long.__dict__, **bad}))
    with pytest.raises(ValueError, match="not an organization login"):
        check_login("octo-org/app")


# ---- what the tenant reads -------------------------------------------------------------------------
def test_success_shows_the_uri_by_digest_every_tag_bytes_duration_and_a_pull_command() -> None:
    done = state(report=report(tags={"set": ["v1.2.3", "v1.2"], "unchanged": ["latest"], "aliases": ["v1"]}))
    output = check_output.outcome_output(done)
    assert check_output.conclusion(done) == "success"
    assert output.title == "Mirrored to ECR: ghcr/octo-org/app@sha256:abababababab…"
    assert f"`{DEST}@{DIGEST}`" in output.summary
    assert "`v1.2.3`, `v1.2`, `latest`, `v1` (aliases included)" in output.summary
    assert "**Bytes moved**: 12.3 MB" in output.summary and "**Duration**: 6.2 s" in output.summary
    assert f"docker pull {DEST}@{DIGEST}" in output.summary


def test_success_without_a_report_still_gives_the_image_and_the_pull_command() -> None:
    output = check_output.outcome_output(state(report=None))
    assert f"docker pull {DEST}@{DIGEST}" in output.summary and "`v1.2.3`" in output.summary
    assert "stored no report" in output.summary


def test_a_denied_private_package_says_which_credential_the_operator_stores_and_where() -> None:
    failed = report(ok=False, errors=["access to octo-org/app denied (tried: installation token, anonymous); "
                                      "store a read credential"])
    output = check_output.outcome_output(state("FAILED", failed))
    assert output.title == "Not mirrored: GHCR denied access to octo-org/app"
    assert "AWS Secrets Manager as `ghcr2ecr/ghcr-pull/1001`" in output.summary and "read:packages" in output.summary
    assert "Private packages" in output.summary


def test_an_immutable_conflict_names_the_tag() -> None:
    failed = report(ok=False, tags={"set": ["v1.2"], "unchanged": [], "skipped": {},
                                    "conflicts": ["PUT .../manifests/v1.2.3: HTTP 400; TAG_INVALID: immutable"]},
                    digests={"v1.2.3": DIGEST, "v1.2": DIGEST})
    output = check_output.outcome_output(state("FAILED", failed))
    assert check_output.conclusion(state("FAILED", failed)) == "failure"
    assert output.title == "Not mirrored: tag v1.2.3 conflicts in an immutable ECR repository"
    assert "`v1.2.3` already points at another digest" in output.summary


@pytest.mark.parametrize("status,conclusion,words", [("TIMED_OUT", "timed_out", "timed out"),
                                                     ("STOPPED", "cancelled", "was stopped"),
                                                     ("FAULT", "failure", "failed inside CodeBuild"),
                                                     ("FAILED", "failure", "failed")])
def test_a_build_that_died_without_a_report_is_still_concluded(status: str, conclusion: str, words: str) -> None:
    died = state(status, None)
    output = check_output.outcome_output(died)
    assert check_output.conclusion(died) == conclusion
    assert output.title == f"Not mirrored: the copy build {words}" and "ghcr2ecr-prod-copy:1e3a" in output.summary


def test_an_invalid_variable_is_named() -> None:
    output = check_output.not_started("GHCR2ECR_TAGS", "Actions variable GHCR2ECR_TAGS: empty glob")
    assert output.title == "Not mirrored: Actions variable GHCR2ECR_TAGS is invalid"
    assert "fix the Actions variable `GHCR2ECR_TAGS`" in output.summary


def test_registry_text_cannot_break_out_of_its_code_span() -> None:
    failed = report(ok=False, errors=["boom ``` [click](https://evil.example) " + "x" * 1000])
    summary = check_output.outcome_output(state("FAILED", failed)).summary
    assert "```" not in summary.split("**What to do**")[0] and len(summary) < 1200


# ---- storage records --------------------------------------------------------------------------------
def test_one_storage_record_per_mirrored_digest_with_the_delivery_tag_as_version() -> None:
    data = report(digests={"v1.2.3": DIGEST, "v1.2": DIGEST, "latest": OTHER, "sha256-" + "ab" * 32 + ".sig": OTHER},
                  tags={"set": ["v1.2.3", "v1.2", "latest", "sha256-" + "ab" * 32 + ".sig"], "unchanged": []})
    records = records_for(state(report=data), "app")
    assert [(r.digest, r.version) for r in records] == [(DIGEST, "v1.2.3"), (OTHER, "latest")]
    first = records[0]
    assert (first.name, first.registry_url, first.repository, first.github_repository) == (
        "app", "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com", "ghcr/octo-org/app", "app")
    assert first.artifact_url == ("https://eu-west-1.console.aws.amazon.com/ecr/repositories/private/123456789012/"
                                  "ghcr/octo-org/app?region=eu-west-1")


def test_a_signature_push_records_nothing() -> None:
    assert records_for(state(report=report(), tag="sha256-" + "ab" * 32 + ".sig"), "app") == []

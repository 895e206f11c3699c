"""The action's script, run as the runner runs it, against a stand-in ID-token service and deployment."""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.action.stub_app import (DIGEST, ECR_IMAGE, IMAGE, JOB_TOKEN, REQUEST_TOKEN, SCRIPT, Reply, Step,
                                   StubApp, run_step)


@pytest.fixture
def app() -> Iterator[StubApp]:
    with StubApp() as stub:
        yield stub


def load_script() -> ModuleType:
    """Import the script as a module, for its pure functions."""
    spec = importlib.util.spec_from_file_location("handoff_script", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def commands(step: Step) -> list[str]:
    """The lines of stdout the runner would read as workflow commands."""
    return [line for line in step.stdout.splitlines() if line.lstrip().startswith(("::", "##["))]


def test_a_copied_image_sets_the_outputs_and_writes_a_summary_with_image_tags_bytes_and_duration(
        app: StubApp, tmp_path: Path) -> None:
    app.status_replies = [
        Reply(200, {"status": "queued"}),
        Reply(200, {"status": "running"}),
        Reply(200, {"status": "succeeded", "image": ECR_IMAGE, "tags": ["v1.2.0", "latest"],
                    "bytes_moved": 12_345_678, "duration_seconds": 4.25}),
    ]

    step = run_step(app, tmp_path)

    assert step.returncode == 0, step.log
    assert step.outputs == {"status": "succeeded", "image": ECR_IMAGE, "tags": "v1.2.0,latest"}
    assert "`%s`" % ECR_IMAGE in step.summary and "`%s`" % IMAGE in step.summary
    assert "`v1.2.0`, `latest`" in step.summary
    assert "12.3 MB (12345678 bytes)" in step.summary and "4.2 s" in step.summary
    assert "h-0001" in step.summary
    assert step.stderr == ""


def test_the_hand_off_posts_the_image_and_job_token_with_a_minted_id_token_for_the_url_audience(
        app: StubApp, tmp_path: Path) -> None:
    step = run_step(app, tmp_path)

    assert step.returncode == 0, step.log
    [post] = app.posts()
    assert json.loads(post.body) == {"image": IMAGE, "token": JOB_TOKEN}
    assert post.headers["content-type"] == "application/json"
    assert post.bearer in app.minted
    assert {mint.query["audience"][0] for mint in app.mints()} == {app.url}
    assert all(mint.query["api-version"] == ["2.0"] for mint in app.mints())


def test_an_explicit_audience_is_url_encoded_into_the_id_token_request(app: StubApp, tmp_path: Path) -> None:
    step = run_step(app, tmp_path, audience="https://mirror.example/api/?a=b&c")

    assert step.returncode == 0, step.log
    assert {mint.query["audience"][0] for mint in app.mints()} == {"https://mirror.example/api/?a=b&c"}


def test_each_status_poll_carries_a_freshly_minted_id_token(app: StubApp, tmp_path: Path) -> None:
    app.status_replies = [Reply(200, {"status": "queued"})] * 3 + [Reply(200, {"status": "running"})] * 2 + [
        Reply(200, {"status": "succeeded", "image": ECR_IMAGE, "tags": []})]

    step = run_step(app, tmp_path)

    assert step.returncode == 0, step.log
    polls = app.polls()
    assert len(polls) == 6
    assert all(poll.path == "/api/github/handoff/h-0001" for poll in polls)
    used = [seen.bearer for seen in app.posts() + polls]
    assert len(set(used)) == len(used) == len(app.minted)
    assert set(used) == set(app.minted)


@pytest.mark.parametrize("status, headers", [(503, {}), (429, {"Retry-After": "2"}), (502, {})])
def test_a_busy_deployment_is_asked_again_until_it_accepts_the_hand_off(
        app: StubApp, tmp_path: Path, status: int, headers: dict[str, str]) -> None:
    app.handoff_replies = [Reply(status, {"reason": "could not queue"}, headers)] * 2 + [
        Reply(202, {"status": "queued", "id": "h-0002"})]

    step = run_step(app, tmp_path)

    assert step.returncode == 0, step.log
    assert len(app.posts()) == 3
    assert step.outputs["status"] == "succeeded"
    assert app.polls()[0].path == "/api/github/handoff/h-0002"


def test_a_deployment_that_stays_unavailable_fails_after_a_bounded_number_of_tries(
        app: StubApp, tmp_path: Path) -> None:
    app.handoff_replies = [Reply(503, {"reason": "could not queue"})]

    step = run_step(app, tmp_path)

    assert step.returncode == 1
    assert len(app.posts()) == 6
    assert step.outputs["status"] == "failed"
    assert "HTTP 503" in step.summary


def test_an_unreachable_deployment_fails_after_a_bounded_number_of_tries_naming_the_url(
        app: StubApp, tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once it is closed

    step = run_step(app, tmp_path, url="http://127.0.0.1:%d/api" % port)

    assert step.returncode == 1
    assert len(app.mints()) == 6
    assert "could not reach http://127.0.0.1:%d/api/github/handoff" % port in step.stdout


@pytest.mark.parametrize("status, body, cause, remedy", [
    (401, {"reason": "audience mismatch"}, "audience mismatch", "`audience`"),
    (403, {"Code": "ForbiddenError", "Message": "owner 4242 is not allowed"}, "owner 4242 is not allowed",
     "ALLOWED_ACCOUNTS"),
    (404, {"reason": "hand-offs are off"}, "hand-offs are off", "not enabled in this deployment"),
    (400, {"reason": "bad image"}, "bad image", "build-push-action"),
    (413, None, "HTTP 413", "size limit"),
])
def test_a_refused_hand_off_fails_at_once_with_the_servers_reason_and_what_to_do(
        app: StubApp, tmp_path: Path, status: int, body: object, cause: str, remedy: str) -> None:
    app.handoff_replies = [Reply(status, body)]

    step = run_step(app, tmp_path)

    assert step.returncode == 1
    assert len(app.posts()) == 1 and app.polls() == []
    assert step.outputs == {"status": "failed", "image": "", "tags": ""}
    assert "HTTP %d" % status in step.summary and cause in step.summary and remedy in step.summary
    [error] = [line for line in commands(step) if line.startswith("::error")]
    assert cause in error


def test_a_poll_for_an_unknown_hand_off_fails_at_once(app: StubApp, tmp_path: Path) -> None:
    app.status_replies = [Reply(404, {"reason": "no such hand-off"})]

    step = run_step(app, tmp_path)

    assert step.returncode == 1
    assert len(app.polls()) == 1
    assert "no such hand-off" in step.summary
    assert "repository that made it" in step.summary


def test_a_failed_copy_exits_non_zero_with_its_reason_and_remedy_in_the_summary(
        app: StubApp, tmp_path: Path) -> None:
    app.status_replies = [Reply(200, {"status": "failed", "reason": "denied: ghcr.io/acme/app refused the token"})]

    step = run_step(app, tmp_path)

    assert step.returncode == 1
    assert step.outputs == {"status": "failed", "image": "", "tags": ""}
    assert "denied: ghcr.io/acme/app refused the token" in step.summary
    assert "packages: read" in step.summary
    assert any(line.startswith("::error") and "denied" in line for line in commands(step))


def test_with_fail_on_error_false_a_failed_copy_exits_zero_with_status_failed_and_a_warning(
        app: StubApp, tmp_path: Path) -> None:
    app.status_replies = [Reply(200, {"status": "failed", "reason": "denied"})]

    step = run_step(app, tmp_path, fail_on_error="false")

    assert step.returncode == 0
    assert step.outputs["status"] == "failed"
    assert [line for line in commands(step) if not line.startswith("::add-mask::")][0].startswith("::warning")


def test_a_copy_still_running_at_timeout_minutes_fails_with_status_timed_out(app: StubApp, tmp_path: Path) -> None:
    app.status_replies = [Reply(200, {"status": "running"})]

    step = run_step(app, tmp_path, timeout_minutes="0.01")

    assert step.returncode == 1
    assert step.outputs["status"] == "timed-out"
    assert "still running after 0.01 minutes" in step.summary and "`timeout-minutes`" in step.summary
    assert len(app.polls()) >= 2


def test_with_wait_false_the_step_ends_once_the_hand_off_is_queued(app: StubApp, tmp_path: Path) -> None:
    step = run_step(app, tmp_path, wait="false")

    assert step.returncode == 0, step.log
    assert step.outputs == {"status": "queued", "image": "", "tags": ""}
    assert app.polls() == []
    assert "h-0001" in step.summary


def test_the_request_token_is_sent_only_to_the_id_token_service(app: StubApp, tmp_path: Path) -> None:
    app.status_replies = [Reply(200, {"status": "running"}), Reply(200, {"status": "succeeded", "image": ECR_IMAGE})]

    step = run_step(app, tmp_path)

    assert step.returncode == 0, step.log
    assert app.to_app() and app.mints()
    for seen in app.to_app():
        assert REQUEST_TOKEN not in json.dumps(seen.headers) + seen.body.decode() + seen.path
    assert all(mint.bearer == REQUEST_TOKEN for mint in app.mints())


def test_every_token_is_masked_before_anything_else_is_printed_and_never_printed_in_clear(
        app: StubApp, tmp_path: Path) -> None:
    app.status_replies = [Reply(200, {"status": "running"}), Reply(200, {"status": "succeeded", "image": ECR_IMAGE})]

    step = run_step(app, tmp_path)

    assert step.returncode == 0, step.log
    lines = step.stdout.splitlines()
    first_other = next(index for index, line in enumerate(lines) if not line.startswith("::add-mask::"))
    masked_first = set(lines[:first_other])
    assert {"::add-mask::" + JOB_TOKEN, "::add-mask::" + REQUEST_TOKEN, "::add-mask::" + app.minted[0]} <= masked_first
    masked = {line.removeprefix("::add-mask::") for line in lines if line.startswith("::add-mask::")}
    assert set(app.minted) <= masked
    for secret in [JOB_TOKEN, REQUEST_TOKEN, *app.minted]:
        assert secret not in step.log.replace("::add-mask::" + secret, "")
        assert secret not in step.summary and secret not in json.dumps(step.outputs)


@pytest.mark.parametrize("url", [
    "http://example.com/api/", "http://10.0.0.1:8000/api", "http://localhost.example.com/",
    "http://127.0.0.1.nip.io/api", "ftp://127.0.0.1/api", "https://user:pw@example.com/api",
])
def test_a_url_that_is_not_https_or_loopback_http_is_refused_before_any_request(
        app: StubApp, tmp_path: Path, url: str) -> None:
    step = run_step(app, tmp_path, url=url)

    assert step.returncode == 1
    assert app.seen == []
    assert step.outputs["status"] == "failed"
    assert "`url`" in step.summary


def test_plain_http_is_refused_for_a_non_loopback_host_saying_why(app: StubApp, tmp_path: Path) -> None:
    step = run_step(app, tmp_path, url="http://mirror.example.com/api/")

    assert step.returncode == 1
    assert "http:// is accepted for loopback hosts only" in step.stdout


def test_loopback_means_localhost_127_0_0_0_8_and_ipv6_one() -> None:
    is_loopback = load_script().is_loopback

    assert all(is_loopback(host) for host in ["localhost", "LOCALHOST", "127.0.0.1", "127.9.8.7", "::1"])
    assert not any(is_loopback(host) for host in ["localhost.example.com", "10.0.0.1", "0.0.0.0", "::", "example.com"])


@pytest.mark.parametrize("image", [
    "ghcr.io/acme/app:latest",
    "docker.io/acme/app@" + DIGEST,
    "ghcr.io/acme@" + DIGEST,
    "ghcr.io/acme/app@sha256:abc",
    "ghcr.io/acme/app@" + DIGEST.upper(),
    "ghcr.io/acme/app@" + DIGEST + "\n::set-output name=x::y",
    "",
])
def test_a_malformed_image_is_refused_before_any_request(app: StubApp, tmp_path: Path, image: str) -> None:
    step = run_step(app, tmp_path, image=image)

    assert step.returncode == 1
    assert app.seen == []
    assert "ghcr.io/&lt;owner&gt;/&lt;package&gt;@sha256" in step.summary
    assert all(line.startswith(("::add-mask::", "::error title=ghcr2ecr::")) for line in commands(step))


def test_an_image_name_with_capitals_is_handed_over_lower_cased(app: StubApp, tmp_path: Path) -> None:
    step = run_step(app, tmp_path, image="ghcr.io/Acme/App@" + DIGEST)

    assert step.returncode == 0, step.log
    assert json.loads(app.posts()[0].body)["image"] == IMAGE


def test_a_job_without_id_token_permission_fails_saying_what_to_add(app: StubApp, tmp_path: Path) -> None:
    step = run_step(app, tmp_path, id_token=False)

    assert step.returncode == 1
    assert app.seen == []
    assert "id-token: write" in step.summary and "forks" in step.summary


@pytest.mark.parametrize("route, status", [("handoff", 303), ("status", 302), ("status", 307)])
def test_a_redirect_is_not_followed_so_no_token_leaves_for_another_url(
        app: StubApp, tmp_path: Path, route: str, status: int) -> None:
    redirect = [Reply(status, {}, {"Location": app.base + "/elsewhere"})]
    if route == "handoff":
        app.handoff_replies = redirect
    else:
        app.status_replies = redirect

    step = run_step(app, tmp_path)

    assert step.returncode == 1
    assert [seen for seen in app.seen if seen.path == "/elsewhere"] == []
    assert "HTTP %d" % status in step.summary


def test_an_answer_over_64_kib_is_refused(app: StubApp, tmp_path: Path) -> None:
    app.status_replies = [Reply(200, raw=b'{"status": "running", "pad": "' + b"x" * 70_000 + b'"}')]

    step = run_step(app, tmp_path)

    assert step.returncode == 1
    assert "more than 64 KiB" in step.summary


def test_server_text_cannot_form_workflow_commands_or_markup(app: StubApp, tmp_path: Path) -> None:
    hostile = "denied\n::set-output name=status::succeeded\r\n##[warning]x ::add-mask::y <img src=x> [link](http://e)"
    app.status_replies = [Reply(200, {"status": "failed", "reason": hostile, "image": "evil\n::x",
                                      "tags": ["ok", "no\n::"]})]

    step = run_step(app, tmp_path)

    assert step.returncode == 1
    assert step.outputs == {"status": "failed", "image": "", "tags": ""}
    for line in commands(step):
        assert re.match(r"::(add-mask|error title=ghcr2ecr)::", line), line
        assert "::" not in line.split("::", 2)[2]
        assert "##[" not in line
    assert "<img" not in step.summary and "&lt;img src=x&gt;" in step.summary
    assert "\\[link\\]\\(http" in step.summary
    assert "\n::" not in step.summary


def test_tags_the_server_sends_outside_the_tag_grammar_are_dropped(app: StubApp, tmp_path: Path) -> None:
    app.status_replies = [Reply(200, {"status": "succeeded", "image": ECR_IMAGE,
                                      "tags": ["v1", "bad tag", "x" * 200, 7, "-lead", "ok_2.0"]})]

    step = run_step(app, tmp_path)

    assert step.returncode == 0, step.log
    assert step.outputs["tags"] == "v1,ok_2.0"


def test_a_success_without_a_valid_ecr_image_is_reported_as_a_failure(app: StubApp, tmp_path: Path) -> None:
    app.status_replies = [Reply(200, {"status": "succeeded", "image": "not an image", "tags": ["v1"]})]

    step = run_step(app, tmp_path)

    assert step.returncode == 1
    assert step.outputs["status"] == "failed"
    assert "no valid ECR image" in step.summary


@pytest.mark.parametrize("name, value", [("wait", "yes"), ("timeout-minutes", "0"), ("timeout-minutes", "soon"),
                                         ("fail-on-error", "maybe")])
def test_an_invalid_setting_is_refused_naming_the_input(app: StubApp, tmp_path: Path, name: str, value: str) -> None:
    inputs: dict[str, str] = {name.replace("-", "_"): value}
    step = run_step(app, tmp_path, True, **inputs)

    assert step.returncode == 1
    assert app.seen == []
    assert "input `%s`" % name in step.stdout

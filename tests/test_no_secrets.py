"""A full flow, with failures, searched for secrets: no token, key or webhook secret in anything it emits."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import yaml

from chalicelib.cli import main
from standins.ghcr_ecr import EcrStandin, GhcrStandin
from standins.push import PushedImage
from tests.support.app_fixtures import WEBHOOK_SECRET, AppEnv, build_state_event, load_delivery, post
from tests.support.engine_helpers import ecr_env, ghcr_env

ROOT = Path(__file__).resolve().parent.parent
FALLBACK_SECRET_VALUE = json.dumps({"username": "operator", "accessToken": "ghp_operatorFallbackPat0123456789abcdef"})


def basic(username: str, password: str) -> str:
    """Return the base64 an `Authorization: Basic` header carries for this credential."""
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def needles(env: AppEnv) -> dict[str, str]:
    """Return every secret of the flow, with a distinctive inner piece of each (catches partial leaks)."""
    found = {"webhook secret": WEBHOOK_SECRET, "fallback credential": "ghp_operatorFallbackPat0123456789abcdef",
             "fallback Basic header": basic("operator", "ghp_operatorFallbackPat0123456789abcdef")}
    key_lines = [line for line in env.github.private_key_pem.splitlines() if line and not line.startswith("-----")]
    found["private key"] = key_lines[len(key_lines) // 2]
    for index, token in enumerate(env.github.tokens):
        found[f"token {index}"] = token.value
        found[f"token {index} (inner part)"] = token.value[8:28]
        found[f"token {index} Basic header"] = basic("x-access-token", token.value)
    return found


def test_nothing_emitted_during_a_full_flow_holds_a_secret(client, app_env: AppEnv, json_logs, capfd, caplog,
                                                           tmp_path: Path) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="ghcr2ecr")
    app_env.boto("secretsmanager").create_secret(Name="ghcr2ecr/ghcr-pull/1001", SecretString=FALLBACK_SECRET_VALUE)
    emitted: list[str] = []

    # Webhook: a burst, a redelivery, a bad signature, a disallowed account, a queue outage.
    for name in ("multiplatform-untagged-amd64", "multiplatform-tagged-index", "multiplatform-tagged-index",
                 "published-no-repository", "published-user-package", "published-disallowed-account"):
        emitted.append(post(client, load_delivery(name)).body.decode())
    delivery = load_delivery("updated-linked")
    emitted.append(post(client, delivery, delivery.headers(secret="wrong")).body.decode())
    app_env.sqs.fail = True
    emitted.append(post(client, delivery).body.decode())
    app_env.sqs.fail = False
    emitted.append(post(client, delivery).body.decode())

    # Dispatch, with a GitHub outage and a CodeBuild limit on the way (each raises for redelivery).
    messages = [m["Body"] for m in app_env.receive()]
    app_env.github.set_org_variable("octo-org", "GHCR2ECR_TAGS", "v*,latest,2026.*")
    app_env.github.inject("/app/installations/*/access_tokens", status=502, count=3)
    app_env.codebuild.fail_next.append("AccountLimitExceededException")
    for body in messages:
        event = client.events.generate_sqs_event([body])
        for _attempt in range(3):
            try:
                client.lambda_.invoke("dispatch", event)
                break
            except Exception as exc:  # what Lambda would log for the failed invocation
                emitted.append("".join(traceback.format_exception(exc)))
    assert len(app_env.codebuild.calls) == 4  # index, no-repository, user package, updated

    # The builds: the buildspec's revoke step with the token CodeBuild resolves from SSM, then the state change.
    spec = yaml.safe_load((ROOT / "buildspec" / "buildspec.yml").read_text())
    ssm = app_env.boto("ssm")
    for call in app_env.codebuild.calls:
        variables = {v["name"]: v for v in call["variables"]}
        token = ssm.get_parameter(Name=variables["GHCR2ECR_SOURCE_TOKEN"]["value"], WithDecryption=True)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "TMPDIR": str(tmp_path),
               "GHCR2ECR_SOURCE_TOKEN": token["Parameter"]["Value"], "GITHUB_API_URL": app_env.github.url}
        for command in spec["phases"]["build"]["finally"]:
            done = subprocess.run(["bash", "-c", command], env=env, cwd=ROOT, capture_output=True, text=True,
                                  timeout=60)
            emitted.append(done.stdout + done.stderr)
        client.lambda_.invoke("on_build_state", build_state_event(client, call["variables"], "SUCCEEDED"))
    assert app_env.token_parameters() == []
    assert all(t.revoked for t in app_env.github.tokens)

    out, err = capfd.readouterr()
    emitted += [json_logs.text(), out, err, json.dumps(app_env.codebuild.calls), json.dumps(app_env.sqs.sent),
                repr(app_env.github.requests)]
    emitted += [f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records]
    everything = "\n".join(emitted)
    assert json_logs.find("build started") and json_logs.find("build finished")  # the capture did capture
    for what, secret in needles(app_env).items():
        assert secret not in everything, f"{what} leaked"


def test_the_token_is_never_a_plaintext_build_variable(client, app_env: AppEnv) -> None:
    assert post(client, load_delivery("multiplatform-tagged-index")).status_code == 202
    for message in app_env.receive():
        client.lambda_.invoke("dispatch", client.events.generate_sqs_event([message["Body"]]))
    [token] = app_env.github.tokens
    plaintext = [v["value"] for v in app_env.codebuild.calls[0]["variables"] if v["type"] == "PLAINTEXT"]
    assert all(token.value not in value for value in plaintext)
    assert {v["type"] for v in app_env.codebuild.calls[0]["variables"] if "TOKEN" in v["name"]} == {"PARAMETER_STORE"}


@pytest.mark.parametrize("field", ["token", "private key"])
def test_installation_token_and_app_client_reprs_hide_secrets(app_env: AppEnv, field: str) -> None:
    from chalicelib.github.app import GitHubApp

    app = GitHubApp("4242", app_env.github.private_key_pem, app_env.github.url)
    token = app.mint_token(77, None, {"packages": "read"})
    secret = token.value if field == "token" else app_env.github.private_key_pem.splitlines()[5]
    assert secret not in repr(token) and secret not in repr(app)


@pytest.mark.registry
def test_a_sync_run_as_the_build_runs_it_shows_no_credential_basic_header_or_bearer_token(
        ghcr: GhcrStandin, ecr: EcrStandin, pushed_index: PushedImage, repo_name: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    build = {"CODEBUILD_BUILD_ID": "ghcr2ecr-dev-copy:1", "GHCR2ECR_DELIVERY_ID": "d-1",
             "GHCR2ECR_INSTALLATION_ID": "42"}
    for name, value in {**ghcr_env(ghcr, fallback_json=True), **ecr_env(ecr), **build}.items():
        monkeypatch.setenv(name, value)
    source, report = f"http://{ghcr.host}/{repo_name}", tmp_path / "report.json"
    # the installation token is denied, the fallback credential copies; then a tag the source lacks fails
    assert main(["sync", source, f"http://{ecr.host}/{repo_name}", "--tag", "v1", "--report", str(report)]) == 0
    emitted = [report.read_text()]
    assert main(["sync", source, f"http://{ecr.host}/{repo_name}", "--tag", "absent", "--report", str(report)]) == 1
    out, err = capsys.readouterr()
    emitted += [report.read_text(), out, err]
    everything = "\n".join(emitted)
    issued = list(ghcr.tokens.issued)
    assert issued and "fallback token" in everything  # bearer tokens were handed out; the fallback was used
    found = {"ECR password": ecr.credential.password, "ECR Basic header": ecr.credential.basic()[len("Basic "):]}
    for what, credential in (("installation token", ghcr.app_token), ("fallback", ghcr.fallback)):
        found[what] = credential.password
        found[f"{what} Basic header"] = credential.basic()[len("Basic "):]
    for index, token in enumerate(issued):
        found[f"bearer token {index}"] = token
        found[f"bearer token {index} (signature)"] = token.rsplit(".", 1)[-1]
    for what, secret in found.items():
        assert secret not in everything, f"{what} leaked"

"""`ghcr2ecr create-app`: the manifest flow against the GitHub stand-in, credentials into a moto SSM."""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from chalicelib.ops import create_app
from standins.aws import aws_environment, reset
from standins.github import GitHubStandIn

ROOT = Path(__file__).resolve().parents[2]
CODE = "manifest-code-7f3a"
CLIENT_SECRET = "client-secret-do-not-print-8c1d"
WEBHOOK_SECRET = "webhook-secret-do-not-print-52aa"


@pytest.fixture()
def ssm(moto_url: str) -> Iterator[Any]:
    reset(moto_url)
    with aws_environment(moto_url):
        yield boto3.client("ssm")


@pytest.fixture()
def github() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(app_id=31337) as gh:
        yield gh


@pytest.fixture()
def project(tmp_path: Path, github: GitHubStandIn) -> Path:
    """A copy of the project's config and manifest, with the GitHub API pointing at the stand-in."""
    (tmp_path / ".chalice").mkdir()
    shutil.copy(ROOT / "manifest.yml", tmp_path / "manifest.yml")
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    config["environment_variables"]["GITHUB_API_URL"] = github.url
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return tmp_path


def conversion(github: GitHubStandIn) -> dict[str, Any]:
    """What GitHub answers for a converted manifest code."""
    return {
        "id": 31337, "slug": "ghcr2ecr-octo-org", "node_id": "A_kw", "name": "ghcr2ecr-octo-org",
        "owner": {"login": "octo-org", "id": 1001}, "html_url": "https://github.com/apps/ghcr2ecr-octo-org",
        "client_id": "Iv1.0123456789abcdef", "client_secret": CLIENT_SECRET,
        "webhook_secret": WEBHOOK_SECRET, "pem": github.private_key_pem,
    }


class Browser:
    """Does what the operator's browser does: load our page, (GitHub creates the App), follow the redirect."""

    def __init__(self, github: GitHubStandIn, *, state: str | None = None, register: bool = True) -> None:
        self.github, self.forced_state, self.register, self.code = github, state, register, CODE
        self.posted: dict[str, Any] = {}
        self.action = ""
        self.callback: httpx.Response | None = None

    def __call__(self, url: str) -> None:
        page = httpx.get(url).text
        action = re.search(r"action='([^']+)'", page)
        manifest = re.search(r"name='manifest' value='([^']*)'", page)
        assert action and manifest, page
        self.action = html.unescape(action.group(1))
        self.posted = json.loads(html.unescape(manifest.group(1)))
        state = parse_qs(urlsplit(self.action).query)["state"][0]
        if self.register:  # GitHub creates the App and issues a one-time code
            self.github.add_manifest_code(self.code, conversion(self.github))
        self.callback = httpx.get(self.posted["redirect_url"],
                                  params={"code": self.code, "state": self.forced_state or state})


def args(github: GitHubStandIn, **overrides: Any) -> argparse.Namespace:
    values = {"org": "octo-org", "stage": "dev", "github_url": github.url, "port": 0, "no_browser": False}
    return argparse.Namespace(**{**values, **overrides})


def run(project: Path, github: GitHubStandIn, browser: Any, lines: list[str], **overrides: Any) -> int:
    return create_app.run(args(github, **overrides), project_dir=project, open_browser=browser,
                          say=lines.append, wait_seconds=overrides.pop("wait", 0))


def stage_env(project: Path, stage: str = "dev") -> dict[str, str]:
    return json.loads((project / ".chalice" / "config.json").read_text())["stages"][stage]["environment_variables"]


def test_app_credentials_land_in_ssm_as_secure_strings(project: Path, github: GitHubStandIn, ssm: Any) -> None:
    lines: list[str] = []
    assert run(project, github, Browser(github), lines) == 0
    key = ssm.get_parameter(Name="/ghcr2ecr/dev/github/private-key", WithDecryption=True)["Parameter"]
    secret = ssm.get_parameter(Name="/ghcr2ecr/dev/github/webhook-secret", WithDecryption=True)["Parameter"]
    assert (key["Type"], key["Value"]) == ("SecureString", github.private_key_pem)
    assert (secret["Type"], secret["Value"]) == ("SecureString", WEBHOOK_SECRET)
    assert stage_env(project)["GITHUB_PRIVATE_KEY_PARAMETER"] == "/ghcr2ecr/dev/github/private-key"
    assert stage_env(project)["GITHUB_WEBHOOK_SECRET_PARAMETER"] == "/ghcr2ecr/dev/github/webhook-secret"


def test_a_second_stages_app_does_not_overwrite_the_firsts(project: Path, github: GitHubStandIn, ssm: Any) -> None:
    assert run(project, github, Browser(github), []) == 0
    second = Browser(github)
    second.code = "manifest-code-prod"
    assert run(project, github, second, [], stage="prod") == 0
    values = {p["Name"]: ssm.get_parameter(Name=p["Name"], WithDecryption=True)["Parameter"]["Value"]
              for p in ssm.describe_parameters()["Parameters"] if p["Type"] == "SecureString"}
    assert set(values) == {f"/ghcr2ecr/{stage}/github/{leaf}" for stage in ("dev", "prod")
                           for leaf in ("private-key", "webhook-secret")}
    assert stage_env(project, "prod")["GITHUB_WEBHOOK_SECRET_PARAMETER"] == "/ghcr2ecr/prod/github/webhook-secret"
    assert stage_env(project)["GITHUB_WEBHOOK_SECRET_PARAMETER"] == "/ghcr2ecr/dev/github/webhook-secret"
    recorded = json.loads(ssm.get_parameter(Name="/ghcr2ecr/prod/deployment")["Parameter"]["Value"])
    assert recorded["environment_variables"]["GITHUB_APP_ID"] == "31337"  # a deploy from elsewhere finds the App


def test_app_id_and_slug_are_written_into_the_stage_and_the_rest_of_the_file_is_kept(
    project: Path, github: GitHubStandIn, ssm: Any
) -> None:
    before = json.loads((project / ".chalice" / "config.json").read_text())
    assert run(project, github, Browser(github), []) == 0
    after = json.loads((project / ".chalice" / "config.json").read_text())
    assert after["stages"]["dev"]["environment_variables"]["GITHUB_APP_ID"] == "31337"
    assert after["stages"]["dev"]["environment_variables"]["GITHUB_APP_SLUG"] == "ghcr2ecr-octo-org"
    for name in ("GITHUB_APP_ID", "GITHUB_APP_SLUG", "ALLOWED_ACCOUNTS", "GITHUB_PRIVATE_KEY_PARAMETER",
                 "GITHUB_WEBHOOK_SECRET_PARAMETER", "REDELIVERY_STATE_PARAMETER"):
        after["stages"]["dev"]["environment_variables"].pop(name)
        before["stages"]["dev"]["environment_variables"].pop(name, None)
    assert after == before


def test_no_secret_is_ever_printed_or_written_to_the_config(
    project: Path, github: GitHubStandIn, ssm: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    lines: list[str] = []
    browser = Browser(github)
    assert run(project, github, browser, lines) == 0
    captured = capsys.readouterr()
    shown = "\n".join(lines) + captured.out + captured.err + browser.callback.text  # type: ignore[union-attr]
    config_text = (project / ".chalice" / "config.json").read_text()
    pem_body = github.private_key_pem.splitlines()[1]
    for secret in (CLIENT_SECRET, WEBHOOK_SECRET, pem_body, "PRIVATE KEY"):
        assert secret not in shown
        assert secret not in config_text


def test_page_posts_the_manifest_to_the_orgs_new_app_page_with_a_state(
    project: Path, github: GitHubStandIn, ssm: Any
) -> None:
    browser = Browser(github)
    assert run(project, github, browser, []) == 0
    split = urlsplit(browser.action)
    assert f"{split.scheme}://{split.netloc}{split.path}" == f"{github.url}/organizations/octo-org/settings/apps/new"
    assert len(parse_qs(split.query)["state"][0]) >= 32
    assert browser.posted["default_events"] == ["registry_package"]
    assert browser.posted["redirect_url"].startswith("http://127.0.0.1:")
    assert browser.posted["name"] == "ghcr2ecr-octo-org"


def test_without_org_the_app_is_created_for_the_user(project: Path, github: GitHubStandIn, ssm: Any) -> None:
    browser = Browser(github)
    assert run(project, github, browser, [], org=None) == 0
    assert urlsplit(browser.action).path == "/settings/apps/new"


def test_deployed_webhook_url_goes_into_the_manifest(project: Path, github: GitHubStandIn, ssm: Any) -> None:
    api = "https://abc123.execute-api.eu-west-1.amazonaws.com/api/"
    record = {"resources": [{"name": "rest_api", "resource_type": "rest_api", "rest_api_url": api}]}
    (project / ".chalice" / "deployed").mkdir()
    (project / ".chalice" / "deployed" / "dev.json").write_text(json.dumps(record))
    browser = Browser(github)
    assert run(project, github, browser, []) == 0
    assert browser.posted["hook_attributes"] == {"url": api + "github/webhook", "active": True}


def test_a_redirect_with_another_state_is_refused_and_nothing_is_stored(
    project: Path, github: GitHubStandIn, ssm: Any
) -> None:
    before = (project / ".chalice" / "config.json").read_text()
    lines: list[str] = []
    browser = Browser(github, state="forged-state")
    assert run(project, github, browser, lines) == 1
    assert browser.callback is not None and browser.callback.status_code == 400
    assert any("state" in line for line in lines)
    assert not [r for r in github.requests if r.path.startswith("/app-manifests/")]  # the code was never used
    assert ssm.describe_parameters()["Parameters"] == []
    assert (project / ".chalice" / "config.json").read_text() == before


def test_a_spent_code_fails_with_advice_and_stores_nothing(project: Path, github: GitHubStandIn, ssm: Any) -> None:
    github.add_manifest_code(CODE, conversion(github))
    httpx.post(f"{github.url}/app-manifests/{CODE}/conversions")  # someone converted it already
    lines: list[str] = []
    assert run(project, github, Browser(github, register=False), lines) == 1
    assert any("HTTP 404" in line and "create-app" in line for line in lines)
    assert ssm.describe_parameters()["Parameters"] == []
    assert stage_env(project)["GITHUB_APP_ID"] == ""


def test_a_new_stage_is_created_and_uses_its_configured_parameter_names(
    project: Path, github: GitHubStandIn, ssm: Any
) -> None:
    config = json.loads((project / ".chalice" / "config.json").read_text())
    config["stages"]["prod"] = {"environment_variables": {"GITHUB_PRIVATE_KEY_PARAMETER": "/acme/app-key"}}
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    assert run(project, github, Browser(github), [], stage="prod") == 0
    assert ssm.get_parameter(Name="/acme/app-key", WithDecryption=True)["Parameter"]["Value"] == github.private_key_pem
    assert stage_env(project, "prod")["GITHUB_APP_ID"] == "31337"
    assert stage_env(project)["GITHUB_APP_ID"] == ""


def test_with_no_browser_the_url_is_printed_and_the_flow_still_completes(
    project: Path, github: GitHubStandIn, ssm: Any
) -> None:
    browser = Browser(github)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        found = re.search(r"open (http://127\.0\.0\.1:\d+)", line)
        if found:  # the operator pastes the printed URL into a browser, which comes back before the wait
            browser(found.group(1))

    def never(url: str) -> None:
        raise AssertionError("--no-browser must not open a browser")

    status = create_app.run(args(github, no_browser=True), project_dir=project, open_browser=never, say=say,
                            wait_seconds=0)
    assert status == 0
    assert stage_env(project)["GITHUB_APP_ID"] == "31337"


def test_giving_up_after_the_wait_leaves_everything_untouched(project: Path, github: GitHubStandIn, ssm: Any) -> None:
    lines: list[str] = []
    status = create_app.run(args(github), project_dir=project, open_browser=lambda url: None, say=lines.append,
                            wait_seconds=0)
    assert status == 1
    assert any("no answer from GitHub" in line for line in lines)
    assert ssm.describe_parameters()["Parameters"] == []


def test_empty_allowed_accounts_becomes_the_private_apps_owner(project: Path, github: GitHubStandIn, ssm: Any) -> None:
    lines: list[str] = []
    assert run(project, github, Browser(github), lines) == 0
    assert stage_env(project)["ALLOWED_ACCOUNTS"] == "octo-org"
    assert any("ALLOWED_ACCOUNTS" in line for line in lines)


def test_configured_allowed_accounts_are_left_alone(project: Path, github: GitHubStandIn, ssm: Any) -> None:
    data = json.loads((project / ".chalice" / "config.json").read_text())
    data["stages"]["dev"]["environment_variables"]["ALLOWED_ACCOUNTS"] = "acme,1001"
    (project / ".chalice" / "config.json").write_text(json.dumps(data))
    assert run(project, github, Browser(github), []) == 0
    assert stage_env(project)["ALLOWED_ACCOUNTS"] == "acme,1001"


def test_the_ghcr2ecr_command_runs_the_flow_from_the_checkout(
    project: Path, github: GitHubStandIn, ssm: Any, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    from chalicelib import cli

    monkeypatch.chdir(project / ".chalice")  # any directory inside the checkout
    monkeypatch.setattr(create_app.webbrowser, "open", Browser(github))
    monkeypatch.setattr(create_app, "WAIT_SECONDS", 0)  # the browser came back already
    assert cli.main(["create-app", "--org", "octo-org", "--github-url", github.url]) == 0
    assert stage_env(project)["GITHUB_APP_ID"] == "31337"
    out = capsys.readouterr().out
    assert "1/4" in out and "4/4" in out and WEBHOOK_SECRET not in out and CLIENT_SECRET not in out


class BrokenSsm:
    """An SSM client whose calls fail the way boto3 does without permissions (`puts_only`: reads work)."""

    def __init__(self, ssm: Any, puts_only: bool) -> None:
        self.ssm, self.puts_only = ssm, puts_only

    def get_parameter(self, **kwargs: Any) -> Any:
        return self.ssm.get_parameter(**kwargs)

    def describe_parameters(self, **kwargs: Any) -> Any:
        if not self.puts_only:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeParameters")
        return self.ssm.describe_parameters(**kwargs)

    def put_parameter(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutParameter")


def test_without_aws_access_nothing_is_created_on_github(project: Path, github: GitHubStandIn, ssm: Any) -> None:
    lines: list[str] = []

    def browser(url: str) -> None:
        raise AssertionError("the browser must not open when AWS cannot store the App's key")

    status = create_app.run(args(github), project_dir=project, open_browser=browser, ssm=BrokenSsm(ssm, False),
                            say=lines.append, wait_seconds=0)
    assert status == 1
    assert any("nothing was created" in line for line in lines)


def test_a_failed_store_after_creation_explains_recovery_without_showing_secrets(
    project: Path, github: GitHubStandIn, ssm: Any
) -> None:
    lines: list[str] = []
    status = create_app.run(args(github), project_dir=project, open_browser=Browser(github),
                            ssm=BrokenSsm(ssm, True), say=lines.append, wait_seconds=0)
    assert status == 1
    text = "\n".join(lines)
    assert "GitHub created App ghcr2ecr-octo-org (id 31337)" in text and "generate a private key" in text
    assert WEBHOOK_SECRET not in text and CLIENT_SECRET not in text and "PRIVATE KEY" not in text
    assert stage_env(project)["GITHUB_APP_ID"] == ""


def test_ghes_api_url_is_derived_from_the_web_url_unless_configured() -> None:
    assert create_app.api_url_for("https://github.com", "https://api.github.com") == "https://api.github.com"
    assert create_app.api_url_for("https://ghe.example.com", "") == "https://ghe.example.com/api/v3"
    assert create_app.api_url_for("http://127.0.0.1:9", "http://127.0.0.1:9/") == "http://127.0.0.1:9"

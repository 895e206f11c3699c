"""`ghcr2ecr create-app`: create the GitHub App from manifest.yml and store its credentials in AWS.

Steps: serve the manifest form on 127.0.0.1, receive GitHub's one-time code, exchange it
(`POST /app-manifests/{code}/conversions`), store the PEM and webhook secret as SSM SecureStrings,
write the App id and slug into the stage's `.chalice/config.json`. No secret is ever printed.
"""

from __future__ import annotations

import argparse
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import Settings, setting
from chalicelib.ops import state
from chalicelib.ops.chalice_config import ChaliceConfig
from chalicelib.ops.manifest_flow import ManifestFlow, ManifestFlowError
from chalicelib.ops.project import Say, aws_session, find_project_dir, say_stdout

GITHUB_URL = "https://github.com"
GITHUB_API_URL = Settings.github_api_url  # github.com's REST base, the deployment default
APP_NAME_MAX = 34  # GitHub's limit on App names
WAIT_SECONDS = 15 * 60


class CreateAppError(RuntimeError):
    """create-app could not finish; the message says what to do."""


def load_manifest(project_dir: Path) -> dict[str, Any]:
    """Read manifest.yml."""
    return dict(yaml.safe_load((project_dir / "manifest.yml").read_text()))


def prepare_manifest(
    manifest: dict[str, Any], *, github_url: str, org: str | None, webhook_url: str | None
) -> dict[str, Any]:
    """Fill in what is known only at creation: the name for an org, the homepage, the webhook URL."""
    result = {**manifest, "hook_attributes": dict(manifest.get("hook_attributes") or {})}
    if org:
        result["name"] = f"{manifest['name']}-{org}"[:APP_NAME_MAX].rstrip("-")
    if not result.get("url"):
        result["url"] = f"{github_url}/{org}" if org else github_url
    hook = result["hook_attributes"]
    if webhook_url:
        hook.update(url=webhook_url, active=True)
    elif not hook.get("url"):
        # GitHub requires a hook URL; until `deploy` has run there is none, so the hook starts inactive.
        hook.update(url="https://example.invalid/github/webhook", active=False)
    return result


def new_app_url(github_url: str, org: str | None) -> str:
    """Return GitHub's page that accepts a manifest, for a user or an organization."""
    return f"{github_url}/organizations/{org}/settings/apps/new" if org else f"{github_url}/settings/apps/new"


def api_url_for(github_url: str, configured: str) -> str:
    """Return the REST base URL: the configured one, or GitHub Enterprise Server's `/api/v3` for its host."""
    configured = (configured or GITHUB_API_URL).rstrip("/")
    if github_url.rstrip("/") != GITHUB_URL and configured == GITHUB_API_URL:
        return f"{github_url.rstrip('/')}/api/v3"
    return configured


def convert(api_url: str, code: str, client: httpx.Client) -> dict[str, Any]:
    """Exchange the one-time code for the App's id, slug and credentials."""
    response = client.post(
        f"{api_url}/app-manifests/{code}/conversions",
        headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
    )
    if response.status_code != 201:
        raise CreateAppError(
            f"GitHub did not convert the manifest code (HTTP {response.status_code}): a code works once and "
            "for one hour; run `ghcr2ecr create-app` again"
        )
    app = response.json()
    missing = [key for key in ("id", "slug", "pem", "webhook_secret") if not app.get(key)]
    if missing:
        raise CreateAppError(f"GitHub's conversion answer lacks {', '.join(missing)}; the App was not configured")
    return dict(app)


def store_secrets(ssm: Any, app: dict[str, Any], env: dict[str, str], say: Say) -> None:
    """Write the PEM and webhook secret as SSM SecureStrings (names from the stage's configuration)."""
    for name, value, what in (
        (setting("GITHUB_PRIVATE_KEY_PARAMETER", env), app["pem"], "private key"),
        (setting("GITHUB_WEBHOOK_SECRET_PARAMETER", env), app["webhook_secret"], "webhook secret"),
    ):
        ssm.put_parameter(
            Name=name, Value=value, Type="SecureString", Overwrite=True,
            Description=f"ghcr2ecr: GitHub App {app['slug']} {what}",
        )
        say(f"  stored the App's {what} in SSM SecureString {name}")


def run(
    args: argparse.Namespace,
    *,
    project_dir: Path,
    open_browser: Callable[[str], object] | None = None,
    ssm: Any = None,
    http: httpx.Client | None = None,
    say: Say = say_stdout,
    wait_seconds: float = WAIT_SECONDS,
) -> int:
    """Run the manifest flow for `args.stage` (and `args.org`); return the exit code."""
    config = ChaliceConfig(project_dir)
    stage, org = args.stage, args.org
    github_url = args.github_url.rstrip("/")
    if ssm is None:  # operator machine: honours AWS_PROFILE, AWS_REGION and AWS_ENDPOINT_URL
        ssm = aws_session().client("ssm")
    # GitHub hands out the private key once: make sure AWS answers before creating anything.
    try:
        ssm.describe_parameters(MaxResults=1)
        recorded = state.load_stage(ssm, config, stage)
    except (BotoCoreError, ClientError) as exc:
        say(f"create-app: cannot reach SSM Parameter Store with your AWS credentials ({exc}); nothing was created")
        return 1
    if recorded is not None:
        state.merge_stage(config, stage, recorded)
    names = config.app_parameter_names(stage)
    env = {**config.env(stage), **names}
    api_url = api_url_for(github_url, env.get("GITHUB_API_URL", ""))
    webhook_url = config.webhook_url(stage)
    manifest = prepare_manifest(load_manifest(project_dir), github_url=github_url, org=org, webhook_url=webhook_url)

    say(f"1/4 serving the App manifest on 127.0.0.1 for stage {stage}")
    flow = ManifestFlow(manifest, new_app_url(github_url, org), port=args.port)
    local_url = flow.start()
    try:
        say(f"2/4 open {local_url} to create the App on GitHub"
            + (f" for organization {org}" if org else " for your user account"))
        say(f"    (GitHub App names are unique on GitHub; rename {manifest['name']!r} there if it is taken)")
        if not args.no_browser:
            (open_browser or webbrowser.open)(local_url)
        code = flow.wait(wait_seconds)
    except ManifestFlowError as exc:
        say(f"create-app: {exc}")
        return 1
    finally:
        flow.stop()

    say(f"3/4 exchanging GitHub's one-time code at {api_url}")
    client = http or httpx.Client(timeout=30.0)
    try:
        app = convert(api_url, code, client)
    except (CreateAppError, httpx.HTTPError) as exc:
        say(f"create-app: {exc}")
        return 1
    finally:
        if http is None:
            client.close()
    say(f"    created GitHub App {app['slug']} (id {app['id']})")

    say("4/4 storing the App's credentials and configuration")
    try:
        store_secrets(ssm, app, env, say)
    except (BotoCoreError, ClientError) as exc:
        say(f"create-app: GitHub created App {app['slug']} (id {app['id']}) but storing its credentials failed: {exc}")
        say("  Recover without re-creating it: in the App's settings generate a private key and set a webhook")
        say("  secret, store both with `aws ssm put-parameter --type SecureString --overwrite`, then set")
        say(f"  GITHUB_APP_ID={app['id']} in stage {stage} of {config.path}.")
        return 1
    values = {"GITHUB_APP_ID": str(app["id"]), "GITHUB_APP_SLUG": str(app["slug"]), **names}
    owner = str((app.get("owner") or {}).get("login") or "")
    if owner and not env.get("ALLOWED_ACCOUNTS", "").strip():
        # A private App can only be installed on its owner's account, so that is who may use it.
        values["ALLOWED_ACCOUNTS"] = owner
        say(f"  ALLOWED_ACCOUNTS was empty: set to {owner}, the App's owner (a private App installs only there)")
    if api_url != setting("GITHUB_API_URL", env).rstrip("/"):
        values["GITHUB_API_URL"] = api_url
    config.set_env(stage, values)
    config.save()
    say(f"  wrote {', '.join(sorted(values))} into stage {stage} of {config.path}")
    try:
        say(f"  recorded the stage's settings in SSM {state.save_stage(ssm, config, stage)}")
    except (BotoCoreError, ClientError) as exc:
        say(f"  could not record the stage's settings in SSM ({exc}); `ghcr2ecr deploy --stage {stage}` will")

    say("")
    say(f"Next: install the App on an organization: {app.get('html_url') or github_url + '/apps/' + app['slug']}"
        "/installations/new")
    if webhook_url:
        say(f"      then run `ghcr2ecr deploy --stage {stage}` so the Lambdas get the App id.")
    else:
        say(f"      run `ghcr2ecr deploy --stage {stage}`; it prints the webhook URL to enter in the App's settings")
        say("      (General > Webhook: URL, then tick Active), which start inactive until then.")
    return 0


def main(args: argparse.Namespace) -> int:
    """Entry point for `ghcr2ecr create-app`."""
    return run(args, project_dir=find_project_dir(), wait_seconds=WAIT_SECONDS)

"""`ghcr2ecr deploy` and `ghcr2ecr destroy`: everything in AWS for one Chalice stage, step by step.

deploy: build the code bundle, create or update the support stack (infra/support-stack.yml) and put the
bundle in its bucket, copy the stack's outputs into the stage's environment variables, write the
Lambdas' least-privilege policies, then `chalice deploy`; HANDOFF_AUDIENCE is the stage's API URL (a new API's
only after its first `chalice deploy`, which then runs once more). Every step is idempotent, so re-running is safe.
destroy: `chalice delete`, empty the bundle bucket, delete the stack, delete leftover build tokens.
Both first fill what the checkout lacks from the state recorded in AWS (chalicelib/ops/state.py), and deploy
records it again at the end, so a stage can be updated or destroyed from any checkout.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws as app_aws
from chalicelib.config import setting
from chalicelib.ops import bundle as bundles
from chalicelib.ops import state
from chalicelib.ops.chalice_config import ChaliceConfig
from chalicelib.ops.policy import lambda_policies, policy_files, write_policies
from chalicelib.ops.project import Say, aws_session, find_project_dir, region_environment, say_stdout
from chalicelib.ops.stack import TEMPLATE_PATH, StackError, SupportStack, empty_bucket, stack_name
from chalicelib.build.token_cleanup import TOKEN_LIFETIME

Runner = Callable[[Sequence[str], Path, Mapping[str, str]], int]

# Stack output -> the stage environment variable that carries it (DESIGN.md, deployment configuration).
OUTPUT_VARIABLES = {
    "SyncQueueUrl": "SYNC_QUEUE_URL",
    "SyncQueueName": "SYNC_QUEUE_NAME",
    "CodeBuildProjectName": "CODEBUILD_PROJECT",
    "ReportBucketName": "REPORT_BUCKET",
}
# app.py's decorators read these at import time, so `chalice deploy` must see them in its environment.
IMPORT_TIME_VARIABLES = ("SYNC_QUEUE_NAME", "CODEBUILD_PROJECT")
VISIBILITY_FACTOR = 6  # queue visibility timeout >= 6x the consumer's timeout (AWS Lambda + SQS guidance)
# The REST API URL Chalice records and prints: https://<api id>.execute-api.<region>.<dns suffix>/<api stage>/
# (chalice/deploy/planner.py, rest_api_url). A HANDOFF_AUDIENCE of this shape is deploy's own and follows the API;
# any other non-empty value (a custom domain's URL) is the operator's and is kept.
EXECUTE_API_URL = re.compile(r"https://[a-z0-9]+\.execute-api\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[A-Za-z0-9_-]+/?")
ACTION_REFERENCE = "OWNER/ghcr2ecr@v1"  # where the operator publishes action.yml: only they know


@dataclass
class Aws:
    """The AWS clients the deploy commands use (injected in tests)."""

    cloudformation: Any
    s3: Any
    sts: Any
    ssm: Any
    region: str
    partition: str = "aws"

    @classmethod
    def from_environment(cls) -> Aws:
        """Build clients from the standard AWS environment (profile, region, AWS_ENDPOINT_URL)."""
        session = aws_session()
        partition = session.get_partition_for_region(session.region_name)
        return cls(**{name: session.client(name) for name in ("cloudformation", "s3", "sts", "ssm")},
                   region=session.region_name, partition=partition)


def run_command(command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> int:
    """Run a command in `cwd` with `env`, its output going straight to the terminal."""
    return subprocess.run(list(command), cwd=cwd, env=dict(env), check=False).returncode


def chalice_executable() -> str:
    """Return the chalice installed next to this Python (the one whose Python the Lambdas will run)."""
    beside = Path(sys.executable).parent / "chalice"
    return str(beside) if beside.exists() else (shutil.which("chalice") or "chalice")


def stack_parameters(config: ChaliceConfig, stage: str, compute: str, bundle_key: str) -> dict[str, str]:
    """Return the support stack's parameters for a stage, from its Chalice configuration."""
    env = config.env(stage)
    visibility = max(60, VISIBILITY_FACTOR * config.lambda_timeout(stage, "dispatch"))
    return {
        "AppName": config.app_name,
        "Stage": stage,
        "EcrRepositoryPrefix": setting("ECR_REPOSITORY_PREFIX", env),
        "TokenParameterPrefix": setting("TOKEN_PARAMETER_PREFIX", env),
        "PullSecretPrefix": setting("GHCR_PULL_SECRET_PREFIX", env),
        "Compute": compute,
        "CodeBundleKey": bundle_key,
        "QueueVisibilityTimeout": str(visibility),
        "AlarmTopicArn": env.get("ALARM_TOPIC_ARN", "").strip(),
        "ApiGatewayStage": str(config.stage(stage).get("api_gateway_stage") or config.data.get("api_gateway_stage")
                               or "api"),
    }


def upload_bundle(s3: Any, bucket: str, bundle: bundles.Bundle, say: Say) -> None:
    """Put the bundle under its content-hashed key unless that key already holds it."""
    try:
        s3.head_object(Bucket=bucket, Key=bundle.key)
        say(f"  s3://{bucket}/{bundle.key} already holds this bundle")
        return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    s3.put_object(Bucket=bucket, Key=bundle.key, Body=bundle.data, ContentType="application/zip",
                  Metadata={"sha256": bundle.sha256})
    say(f"  uploaded s3://{bucket}/{bundle.key} ({len(bundle.data) / 1e6:.1f} MB)")


def deploy(
    args: argparse.Namespace, *, project_dir: Path, aws: Aws, runner: Runner = run_command,
    install: bundles.Installer = bundles.pip_install, say: Say = say_stdout,
) -> int:
    """Deploy everything for `args.stage`; return the exit code."""
    stage, compute = args.stage, args.compute
    config = ChaliceConfig(project_dir)
    recall_stage(aws, config, stage, say)
    if not config.has_stage(stage):
        say(f"0/6 stage {stage} is new: adding it to {config.path}")
    config.stage(stage)

    say(f"1/6 building the code bundle (sync code, buildspec, pinned dependencies for Python {bundles.TARGET_PYTHON})")
    bundle = bundles.build_bundle(project_dir, install=install)
    say(f"  {bundle.key}: {len(bundle.data) / 1e6:.1f} MB, {len(bundle.pins)} pinned distributions")

    stack = SupportStack(aws.cloudformation, stack_name(config.app_name, stage), say)
    template = (project_dir / TEMPLATE_PATH).read_text()
    compute = compute or stack.parameters().get("Compute") or "lambda"  # unless asked, what the stage uses
    parameters = stack_parameters(config, stage, compute, bundle.key)
    say(f"2/6 support stack {stack.name} (CodeBuild compute: {compute}, queue visibility "
        f"{parameters['QueueVisibilityTimeout']} s)")
    existing = stack.outputs().get("CodeBundleBucketName")
    if existing:  # existing stack: the new key must exist before the project points at it
        upload_bundle(aws.s3, existing, bundle, say)
    outcome = stack.deploy(template, parameters)
    outputs = stack.outputs()
    say(f"  stack {outcome}")
    bucket = outputs["CodeBundleBucketName"]
    if not existing:
        upload_bundle(aws.s3, bucket, bundle, say)
    if state.restore_record(aws.s3, bucket, project_dir, stage):
        say(f"  restored .chalice/deployed/{stage}.json (chalice's record of the stage) from s3://{bucket}")

    say(f"3/6 writing the stack's outputs and the App's parameter names into stage {stage} of {config.path}")
    values = {variable: outputs[key] for key, variable in OUTPUT_VARIABLES.items()}
    values.update(config.app_parameter_names(stage))
    audience = handoff_audience(config.env(stage), config.deployed_api_url(stage))
    if audience is not None:  # unknown before the stage's first chalice deploy: written after it (step 5)
        values["HANDOFF_AUDIENCE"] = audience
    changed = config.set_env(stage, values)
    for variable in values:
        say(f"  {variable}={values[variable]}" + ("" if variable in changed else " (unchanged)"))

    account = aws.sts.get_caller_identity()["Account"]
    say(f"4/6 writing least-privilege Lambda policies for account {account} in {aws.region}")
    documents = lambda_policies(config.app_name, stage, config.env(stage), account=account,
                                region=aws.region, partition=aws.partition)
    written = write_policies(project_dir / ".chalice", documents)
    default, files = policy_files(stage)
    config.set_policy_files(stage, files, default)
    config.save()
    for name in documents:
        say(f"  .chalice/{name}" + ("" if name in written else " (unchanged)"))

    say(f"5/6 chalice deploy --stage {stage}")
    env = region_environment(os.environ, aws.region)
    env.update({name: values[name] for name in IMPORT_TIME_VARIABLES})
    status = runner([chalice_executable(), "deploy", "--stage", stage], project_dir, env)
    audience = handoff_audience(config.env(stage), config.deployed_api_url(stage))
    if status == 0 and audience is not None and audience != config.env(stage).get("HANDOFF_AUDIENCE"):
        # A new API (the stage's first deploy, or one recreated) has a URL only now: the Lambdas need it as the
        # audience of hand-off ID tokens, so Chalice deploys once more with it (the same API; only the setting).
        config.set_env(stage, {"HANDOFF_AUDIENCE": audience})
        config.save()
        say(f"  HANDOFF_AUDIENCE={audience} (the stage's API URL, known now): chalice deploy --stage {stage} again")
        status = runner([chalice_executable(), "deploy", "--stage", stage], project_dir, env)
    # Recorded even after a failure: chalice keeps what it did create, and the next run must find it.
    state.save_record(aws.s3, bucket, project_dir, stage)
    name = state.save_stage(aws.ssm, config, stage)
    if status != 0:
        say(f"deploy: chalice deploy failed (exit {status}); fix the cause above and re-run `ghcr2ecr deploy`")
        return 1

    say(f"6/6 done; the stage's settings are recorded in SSM {name} and chalice's record in s3://{bucket}/"
        f"{state.record_key(stage)}, so any checkout can update or destroy it")
    report_next_steps(ChaliceConfig(project_dir), stage, say)
    return 0


def recall_stage(aws: Aws, config: ChaliceConfig, stage: str, say: Say) -> list[str]:
    """Fill what this checkout lacks of the stage from the settings recorded in AWS; return what was filled."""
    recorded = state.load_stage(aws.ssm, config, stage)
    filled = state.merge_stage(config, stage, recorded) if recorded is not None else []
    if filled:
        say(f"  from {state.state_parameter(config.app_name, stage)}: {', '.join(filled)}")
    return filled


def handoff_audience(env: Mapping[str, str], api_url: str | None) -> str | None:
    """Return the API URL deploy writes as HANDOFF_AUDIENCE; None keeps the value (no URL yet, or the operator's)."""
    current = env.get("HANDOFF_AUDIENCE", "").strip()
    if current and not EXECUTE_API_URL.fullmatch(current):
        return None
    return api_url


def workflow_snippet(url: str, audience: str) -> list[str]:
    """Return the workflow step a tenant adds after its push (docs/tenants.md), for this deployment."""
    lines = ["      - id: ecr",
             f"        uses: {ACTION_REFERENCE}   # where you publish action.yml",
             "        with:",
             f"          url: {url}"]
    if audience != url:
        lines.append(f"          audience: {audience}")
    lines.append("          image: ghcr.io/${{ github.repository_owner }}/<package>@${{ steps.build.outputs.digest }}")
    return lines


def report_next_steps(config: ChaliceConfig, stage: str, say: Say) -> None:
    """Print the webhook URL, the hand-off's URL with the workflow step, and what is still missing."""
    webhook = config.webhook_url(stage)
    env = config.env(stage)
    if webhook:
        say(f"Webhook URL: {webhook}")
    api_url, audience = config.deployed_api_url(stage), env.get("HANDOFF_AUDIENCE", "").strip()
    if api_url and audience:
        say(f"Hand-off URL (the action's `url`, exactly so): {api_url}")
        if audience != api_url:
            say(f"  ID tokens must carry HANDOFF_AUDIENCE={audience}: tenants set the action's `audience` to it")
        say(f"  ID tokens are verified against OIDC_ISSUER={setting('OIDC_ISSUER', env)}")
        say("Tenants hand private images over with this step after their push (docs/tenants.md; the job needs "
            "`permissions: id-token: write, packages: read`):")
        for line in workflow_snippet(api_url, audience):
            say(line)
    if not env.get("GITHUB_APP_ID"):
        say(f"No GitHub App yet: run `ghcr2ecr create-app --stage {stage}`, then `ghcr2ecr deploy --stage {stage}`.")
    elif webhook:
        say("Make sure the App's webhook (GitHub: App settings > General > Webhook) is this URL and Active.")
    if not env.get("ALLOWED_ACCOUNTS"):
        say(f"ALLOWED_ACCOUNTS is empty, so every delivery and hand-off is refused (403): set it in stage {stage} "
            "and re-deploy.")


def destroy(
    args: argparse.Namespace, *, project_dir: Path, aws: Aws, runner: Runner = run_command, say: Say = say_stdout,
) -> int:
    """Remove everything `deploy` created for `args.stage`; return the exit code."""
    stage = args.stage
    config = ChaliceConfig(project_dir)
    if recall_stage(aws, config, stage, say):
        config.save()  # chalice delete reads the stage from the file
    env = config.env(stage)
    stack = SupportStack(aws.cloudformation, stack_name(config.app_name, stage), say)
    bucket = stack.outputs().get("CodeBundleBucketName")
    if bucket and state.restore_record(aws.s3, bucket, project_dir, stage):
        say(f"  restored .chalice/deployed/{stage}.json (chalice's record of the stage) from s3://{bucket}")

    say(f"1/4 chalice delete --stage {stage}")
    run_env = region_environment(os.environ, aws.region)
    run_env.update({name: env.get(name) or "" for name in IMPORT_TIME_VARIABLES})
    status = runner([chalice_executable(), "delete", "--stage", stage], project_dir, run_env)
    if status != 0:
        say(f"destroy: chalice delete failed (exit {status}); the support stack was left in place. Re-run when fixed.")
        return 1

    say(f"2/4 emptying the code bundle bucket {bucket or '(none)'}")
    if bucket:
        say(f"  deleted {empty_bucket(aws.s3, bucket)} objects")
    reports = stack.outputs().get("ReportBucketName")
    if reports:  # build reports and effect markers (they expire on their own, but the stack needs it empty)
        say(f"  emptied the report bucket {reports}: deleted {empty_bucket(aws.s3, reports)} objects")

    say(f"3/4 deleting stack {stack.name}")
    say("  deleted" if stack.delete() else "  no such stack")

    prefix = setting("TOKEN_PARAMETER_PREFIX", env).rstrip("/")
    say(f"4/4 deleting leftover build token parameters under {prefix}/ older than a token's hour")
    deleted, kept = delete_parameters_under(aws.ssm, prefix)
    say(f"  deleted {deleted}; kept {kept} younger ones (the prefix may be shared by other stages' running "
        "builds; they expire within the hour, and any stage's hourly sweep deletes them)")

    gone = {"SYNC_QUEUE_URL": ""}
    if EXECUTE_API_URL.fullmatch(config.stage_env(stage).get("HANDOFF_AUDIENCE", "").strip()):
        gone["HANDOFF_AUDIENCE"] = ""  # the deleted API's URL; an audience of the operator's own stays
    config.set_env(stage, gone)
    config.save()
    kept_state = ""
    if state.load_stage(aws.ssm, config, stage) is not None:
        kept_state = f", the stage's settings ({state.save_stage(aws.ssm, config, stage)}, for a later deploy)"
    say("Kept: the GitHub App and its credentials in SSM "
        f"({setting('GITHUB_PRIVATE_KEY_PARAMETER', env)}, {setting('GITHUB_WEBHOOK_SECRET_PARAMETER', env)})"
        f"{kept_state}, pull secrets in Secrets Manager, and the ECR repositories with their images. "
        "Delete them yourself if wanted.")
    return 0


def delete_parameters_under(ssm: Any, path: str, now: datetime | None = None) -> tuple[int, int]:
    """Delete the SSM parameters under `path` written over a token's lifetime ago; return (deleted, kept)."""
    now = now or datetime.now(timezone.utc)
    found = app_aws.Ssm(ssm).parameters_under(path)
    names = [name for name, modified in found if now - modified > TOKEN_LIFETIME]
    for start in range(0, len(names), 10):  # DeleteParameters takes at most 10 names
        ssm.delete_parameters(Names=names[start:start + 10])
    return len(names), len(found) - len(names)


def main(args: argparse.Namespace) -> int:
    """Entry point for `ghcr2ecr deploy` and `ghcr2ecr destroy` (`args.command` says which)."""
    project_dir = find_project_dir()
    try:
        aws = Aws.from_environment()
        if args.command == "destroy":
            return destroy(args, project_dir=project_dir, aws=aws, runner=run_command)
        return deploy(args, project_dir=project_dir, aws=aws, runner=run_command, install=bundles.pip_install)
    except (StackError, bundles.BundleError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError) as exc:
        print(f"{args.command}: AWS refused a step: {exc}", file=sys.stderr)
        return 1


"""Helpers for the healing tests: an ECR stand-in that moto's credentials log in to, and running queued builds.

The App runs on moto + the GitHub stand-in (tests.support.app_fixtures); images live in the GHCR stand-in;
each build StartBuild recorded is run as CodeBuild would run it: its variables resolved (the token from SSM,
the read credential from Secrets Manager), then `ghcr2ecr run-job`'s own code.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib import aws
from chalicelib.build import run_job
from chalicelib.build.job import BuildJob
from standins.aws import ACCOUNT_ID, aws_variables, reset
from standins.codebuild import resolve_variables
from standins.deliveries import registry_package_payload
from standins.ghcr_ecr import EcrStandin, GhcrStandin
from standins.registry import BasicAuth, RegistryProcess
from standins.tokens import PULL, Credential, Principal
from tests.support.app_fixtures import APP_ID, WEBHOOK_SECRET, AppEnv, clear_caches
from tests.support.engine_helpers import FAST_RETRY, Sleeps, ghcr_env
from chalicelib.webhook.events import sign


@pytest.fixture(scope="session")
def moto_ecr(registry_tools: None, registries_dir: Path) -> Iterator[EcrStandin]:
    """An ECR stand-in whose only login is `AWS:<moto's GetAuthorizationToken password>`."""
    login = Credential("AWS", f"{ACCOUNT_ID}-auth-token")
    registry = RegistryProcess(registries_dir, BasicAuth((login,)), "moto-ecr").start()
    standin = EcrStandin(registry, login)
    yield standin
    standin.stop()


@pytest.fixture
def build_env(moto_url: str, ghcr: GhcrStandin, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The build's environment: moto for ECR's API, the ECR stand-in down the ECR path, GHCR credentials."""
    reset(moto_url)
    for name, value in aws_variables(moto_url).items():
        monkeypatch.setenv(name, value)
    aws.reset()
    return {**aws_variables(moto_url), **ghcr_env(ghcr), "GHCR2ECR_DEST_ECR": "true"}


@pytest.fixture
def world(app_env: AppEnv, ghcr: GhcrStandin, moto_ecr: EcrStandin, monkeypatch: pytest.MonkeyPatch) -> AppEnv:
    """app_env whose source is the GHCR stand-in and destination the ECR stand-in; the read credential in AWS."""
    monkeypatch.setenv("GHCR_REGISTRY", ghcr.url)
    monkeypatch.setenv("ECR_REGISTRY", moto_ecr.url)
    clear_caches()
    aws.use(aws.CodeBuild, app_env.codebuild)
    aws.use(aws.Sqs, app_env.sqs)
    app_env.boto("secretsmanager").create_secret(Name="ghcr2ecr/ghcr-pull/1001", SecretString=json.dumps(
        {"username": ghcr.fallback.username, "accessToken": ghcr.fallback.password}))
    return app_env


def unique_package(prefix: str = "pkg") -> str:
    """Return a package name no other test uses on the session's registries."""
    return f"{prefix}-{secrets.token_hex(4)}"


def delivery_for(package: str, digest: str, tag: str, delivery_id: str | None = None) -> tuple[dict[str, str], bytes]:
    """Return (headers, body) of octo-org's tagged registry_package delivery for `package` (linked to its repo)."""
    payload = registry_package_payload("octo-org", 1001, package, digest, tag, installation_id=77,
                                       repository=package)
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "registry_package",
               "X-GitHub-Delivery": delivery_id or secrets.token_hex(16), "X-GitHub-Hook-Installation-Target-ID":
               str(APP_ID), "X-Hub-Signature-256": sign(WEBHOOK_SECRET.encode(), body)}
    return headers, body


def run_builds(env: AppEnv, ghcr: GhcrStandin, start: int = 0) -> list[dict[str, Any]]:
    """Run every build started since `start`, as CodeBuild would; return each package's result."""
    for token in env.github.tokens:  # GHCR logs App tokens in, and denies them private pulls (FACTS.md §3)
        ghcr.tokens.policy.principals.append(
            Principal(Credential("x-access-token", token.value), {ghcr.public_prefix + "*": PULL}))
    results = []
    for build in env.codebuild.builds[start:]:
        variables = resolve_variables(build["variables"], env.boto("ssm"), env.boto("secretsmanager"))
        job = BuildJob.from_json(variables["GHCR2ECR_JOB"])
        # what the support stack's project sets: the GHCR stand-in's token endpoint is on a port of its own
        build_env = {**os.environ, **variables, "GHCR2ECR_DEST_ECR": "true", "GHCR2ECR_TOKEN_REALMS": ghcr.tokens.url}
        results += run_job.run(job, build_env, retry=FAST_RETRY, sleep=Sleeps())
    return results

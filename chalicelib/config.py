"""Deployment settings: one frozen dataclass, read from the environment on first use."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass


class ConfigError(RuntimeError):
    """A required deployment setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    """The `.chalice/config.json` environment variables of DESIGN.md, typed."""

    github_app_id: str
    sync_queue_url: str
    codebuild_project: str
    github_private_key_parameter: str = "/ghcr2ecr/github/private-key"
    github_webhook_secret_parameter: str = "/ghcr2ecr/github/webhook-secret"
    github_api_url: str = "https://api.github.com"
    ghcr_registry: str = "ghcr.io"
    allowed_accounts: frozenset[str] = frozenset()
    ecr_repository_prefix: str = "ghcr"
    token_parameter_prefix: str = "/ghcr2ecr/tokens/"
    ghcr_pull_secret_prefix: str = "ghcr2ecr/ghcr-pull/"
    # Destination registry host; empty: this account's ECR in this region (derived from SYNC_QUEUE_URL and
    # AWS_REGION). The local demo points it at a loopback registry (`http://127.0.0.1:PORT`).
    ecr_registry: str = ""
    # `ghcr2ecr sync` creates a missing ECR repository; false when ECR repository creation templates do it.
    create_repositories: bool = True
    # redeliver_failed's own state (an SSM String: since when it has looked, what it redelivered).
    redelivery_state_parameter: str = "/ghcr2ecr/redelivery/state"
    # The support stack's report bucket: builds store their report there, on_build_state its effect markers.
    report_bucket: str = ""
    # The workflow hand-off: the `aud` its ID tokens must carry (empty: hand-offs off), and the one issuer.
    handoff_audience: str = ""
    oidc_issuer: str = "https://token.actions.githubusercontent.com"

    def account_allowed(self, login: str, account_id: int | str) -> bool:
        """Tell whether ALLOWED_ACCOUNTS admits this GitHub account (login compared case-insensitively)."""
        if "*" in self.allowed_accounts:
            return True
        return login.lower() in self.allowed_accounts or str(account_id) in self.allowed_accounts

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables, failing with the name of what is missing."""
        env = os.environ if env is None else env

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise ConfigError(f"deployment setting {name} is not set (see .chalice/config.json)")
            return value

        def optional(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        def boolean(name: str, default: bool) -> bool:
            value = env.get(name, "").strip().lower()
            if value not in ("", "true", "false"):
                raise ConfigError(f"deployment setting {name} must be true or false, not {value[:20]!r}")
            return default if not value else value == "true"

        allowed = frozenset(
            item.strip().lower() for item in env.get("ALLOWED_ACCOUNTS", "").split(",") if item.strip()
        )
        return cls(
            github_app_id=required("GITHUB_APP_ID"),
            sync_queue_url=required("SYNC_QUEUE_URL"),
            codebuild_project=required("CODEBUILD_PROJECT"),
            github_private_key_parameter=optional("GITHUB_PRIVATE_KEY_PARAMETER", cls.github_private_key_parameter),
            github_webhook_secret_parameter=optional(
                "GITHUB_WEBHOOK_SECRET_PARAMETER", cls.github_webhook_secret_parameter
            ),
            github_api_url=optional("GITHUB_API_URL", cls.github_api_url).rstrip("/"),
            ghcr_registry=optional("GHCR_REGISTRY", cls.ghcr_registry),
            allowed_accounts=allowed,
            ecr_repository_prefix=optional("ECR_REPOSITORY_PREFIX", cls.ecr_repository_prefix).strip("/"),
            token_parameter_prefix=optional("TOKEN_PARAMETER_PREFIX", cls.token_parameter_prefix),
            ghcr_pull_secret_prefix=optional("GHCR_PULL_SECRET_PREFIX", cls.ghcr_pull_secret_prefix),
            ecr_registry=optional("ECR_REGISTRY", cls.ecr_registry).rstrip("/"),
            create_repositories=boolean("ECR_CREATE_REPOSITORIES", cls.create_repositories),
            redelivery_state_parameter=optional("REDELIVERY_STATE_PARAMETER", cls.redelivery_state_parameter),
            report_bucket=optional("REPORT_BUCKET", cls.report_bucket),
            handoff_audience=optional("HANDOFF_AUDIENCE", cls.handoff_audience),
            oidc_issuer=optional("OIDC_ISSUER", cls.oidc_issuer),
        )


SCHEDULES = {"REDELIVER_EVERY_MINUTES": 15, "RECONCILE_EVERY_HOURS": 24}  # schedule settings and defaults


def schedule_rate(name: str, env: Mapping[str, str] | None = None) -> int:
    """Return a schedule setting (app.py's decorators read it at import, as Chalice needs), a whole number ≥ 1."""
    env = os.environ if env is None else env
    raw = env.get(name, "").strip()
    if not raw:
        return SCHEDULES[name]
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"deployment setting {name} must be a whole number of at least 1, not {raw[:20]!r}")
    return int(raw)


def deployed_name(name: str, env: Mapping[str, str] | None = None, argv: list[str] | None = None) -> str:
    """Return a name app.py's decorators wire (SYNC_QUEUE_NAME, CODEBUILD_PROJECT); exit naming the fix when unset.

    `ghcr2ecr deploy --stage S` writes both into stage S of .chalice/config.json, and Chalice puts them in the
    environment before importing app.py. Without them a bare `chalice deploy --stage S` must stop here, not
    wire stage S's Lambdas to another stage's queue and builds.
    """
    value = (os.environ if env is None else env).get(name, "").strip()
    if value:
        return value
    args = sys.argv if argv is None else argv
    stage = args[args.index("--stage") + 1] if "--stage" in args[:-1] else "dev"
    raise SystemExit(f"{name} is not configured for stage {stage}: run `ghcr2ecr deploy --stage {stage}` (it creates "
                     "the stage's queue and copy project and writes their names into .chalice/config.json)")


def setting(name: str, env: Mapping[str, str] | None = None) -> str:
    """Return one optional text setting alone (its Settings default when unset), requiring none of the others."""
    env = os.environ if env is None else env
    default = getattr(Settings, name.lower(), None)
    if not isinstance(default, str):
        raise ValueError(f"{name} is not an optional text setting")
    return env.get(name, "").strip() or default


@functools.cache
def settings() -> Settings:
    """Return the process-wide settings, read once on first use."""
    return Settings.from_env()

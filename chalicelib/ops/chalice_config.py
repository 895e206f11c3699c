"""Read and edit `.chalice/config.json` for one stage, keeping the rest of the file as it was."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from chalicelib.config import setting

# The Lambda functions app.py defines, by the names Chalice gives them. Chalice runs every route in one
# function named "api_handler" (chalice/constants.py DEFAULT_HANDLER_NAME), so the webhook route's
# per-function settings live under that key, not under the route function's name.
FUNCTIONS = ("api_handler", "dispatch", "on_build_state", "sweep_tokens", "redeliver_failed", "reconcile")

# Settings a stage gets when `deploy` or `create-app` meets it for the first time.
NEW_STAGE: dict[str, Any] = {
    "api_gateway_stage": "api",
    "environment_variables": {"GITHUB_APP_ID": "", "ALLOWED_ACCOUNTS": ""},
    "lambda_functions": {
        "api_handler": {"lambda_timeout": 10},
        "dispatch": {"lambda_timeout": 60, "reserved_concurrency": 10},
        "on_build_state": {"lambda_timeout": 30},
        "sweep_tokens": {"lambda_timeout": 300},
        "redeliver_failed": {"lambda_timeout": 300},
        "reconcile": {"lambda_timeout": 300},
    },
}


# Per-stage SSM parameters (the App's credentials, redeliver_failed's state): each stage gets its own, named
# after it (`/<app>/<stage>/<leaf>`), unless configured otherwise.
APP_PARAMETERS = {"GITHUB_PRIVATE_KEY_PARAMETER": "github/private-key",
                  "GITHUB_WEBHOOK_SECRET_PARAMETER": "github/webhook-secret",
                  "REDELIVERY_STATE_PARAMETER": "redelivery/state"}


class ChaliceConfig:
    """`.chalice/config.json` of one project, loaded once and written back atomically."""

    def __init__(self, project_dir: Path) -> None:
        self.project_dir = Path(project_dir)
        self.path = self.project_dir / ".chalice" / "config.json"
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path} not found: run this command from the ghcr2ecr checkout")
        self.data: dict[str, Any] = json.loads(self.path.read_text())

    @property
    def app_name(self) -> str:
        """Return the Chalice app_name (prefix of every Lambda and of the support stack's resources)."""
        return str(self.data.get("app_name") or "ghcr2ecr")

    def has_stage(self, stage: str) -> bool:
        """Tell whether the file defines `stage`."""
        return stage in self.data.get("stages", {})

    def stage(self, stage: str) -> dict[str, Any]:
        """Return the stage's settings, creating them from NEW_STAGE when missing."""
        stages = self.data.setdefault("stages", {})
        if stage not in stages:
            stages[stage] = json.loads(json.dumps(NEW_STAGE))
            # API Gateway names a stage's metrics by API name (the app name, the same for every stage) and
            # API Gateway stage: a new stage's own name keeps its webhook alarm apart from the other stages'.
            stages[stage]["api_gateway_stage"] = stage
        return stages[stage]

    def env(self, stage: str) -> dict[str, str]:
        """Return the environment variables a stage's Lambdas get (top level, then the stage's)."""
        merged = dict(self.data.get("environment_variables", {}))
        merged.update(self.data.get("stages", {}).get(stage, {}).get("environment_variables", {}))
        return {key: str(value) for key, value in merged.items()}

    def stage_env(self, stage: str) -> dict[str, str]:
        """Return the variables the stage itself sets (not the top level's)."""
        values = self.data.get("stages", {}).get(stage, {}).get("environment_variables", {})
        return {key: str(value) for key, value in values.items()}

    def app_parameter_names(self, stage: str) -> dict[str, str]:
        """Return the stage's App key, webhook secret and redelivery state parameter names, as deploy writes them.

        The stage's own setting wins, then one set at the top level (shared on purpose); a stage that already has
        an App without either keeps the documented defaults it was created with; a new one gets its own names,
        `/<app>/<stage>/github/...`, so two stages in one account never overwrite each other's App.
        """
        own, top = self.stage_env(stage), self.data.get("environment_variables", {})
        legacy = bool(own.get("GITHUB_APP_ID", "").strip())
        names = {}
        for variable, leaf in APP_PARAMETERS.items():
            configured = own.get(variable, "").strip() or str(top.get(variable, "")).strip()
            if not configured and legacy:
                configured = setting(variable, {})
            names[variable] = configured or f"/{self.app_name}/{stage}/{leaf}"
        return names

    def set_env(self, stage: str, values: dict[str, str]) -> list[str]:
        """Set variables in the stage's environment_variables; return the names whose value changed."""
        target = self.stage(stage).setdefault("environment_variables", {})
        changed = [name for name, value in values.items() if target.get(name) != value]
        target.update(values)
        return changed

    def lambda_timeout(self, stage: str, function: str) -> int:
        """Return a function's timeout as Chalice resolves it (function, stage, top level, Chalice's 60)."""
        stage_cfg = self.data.get("stages", {}).get(stage, {})
        for scope in (
            stage_cfg.get("lambda_functions", {}).get(function, {}),
            stage_cfg,
            self.data.get("lambda_functions", {}).get(function, {}),
            self.data,
        ):
            if scope.get("lambda_timeout") is not None:
                return int(scope["lambda_timeout"])
        return 60

    def set_policy_files(self, stage: str, files: dict[str, str], default: str) -> None:
        """Point the stage and each function at its IAM policy file (names relative to .chalice/)."""
        stage_cfg = self.stage(stage)
        stage_cfg["iam_policy_file"] = default
        functions = stage_cfg.setdefault("lambda_functions", {})
        for function, filename in files.items():
            functions.setdefault(function, {})["iam_policy_file"] = filename

    def save(self) -> None:
        """Write the file back (2-space indent, key order kept), replacing it atomically."""
        text = json.dumps(self.data, indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".config-", suffix=".json")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, self.path)

    def deployed_api_url(self, stage: str) -> str | None:
        """Return the REST API URL `chalice deploy` recorded for the stage, if it has run."""
        record = self.project_dir / ".chalice" / "deployed" / f"{stage}.json"
        if not record.is_file():
            return None
        for resource in json.loads(record.read_text()).get("resources", []):
            if resource.get("resource_type") == "rest_api" and resource.get("rest_api_url"):
                return str(resource["rest_api_url"])
        return None

    def webhook_url(self, stage: str) -> str | None:
        """Return the deployed webhook route's URL (POST /github/webhook), if the stage is deployed."""
        api = self.deployed_api_url(stage)
        return f"{api.rstrip('/')}/github/webhook" if api else None

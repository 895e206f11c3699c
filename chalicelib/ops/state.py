"""The deployment's state, kept in AWS, so any checkout (or a CI job) can update or remove a stage.

Two pieces, readable with the operator's credentials (the Lambdas and the build cannot read them):
- the stage's section of `.chalice/config.json` (App id and slug, ALLOWED_ACCOUNTS, the App's parameter
  names, queue and project names, Lambda settings; nothing secret) as the SSM String parameter
  `/<app>/<stage>/deployment`, written by `create-app` and `deploy`;
- the record `chalice deploy` keeps in `.chalice/deployed/<stage>.json` (which REST API and functions are the
  stage's; without it Chalice would create a second API) as `state/<stage>/chalice-deployed.json` in the
  stage's bundle bucket, written after each `chalice deploy`.
A checkout's own non-empty values win; what it lacks (an absent stage, an empty value) is filled from AWS.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.ops.chalice_config import ChaliceConfig


def state_parameter(app_name: str, stage: str) -> str:
    """Return the SSM parameter holding a stage's settings."""
    return f"/{app_name}/{stage}/deployment"


def record_key(stage: str) -> str:
    """Return the bundle bucket key holding a stage's `chalice deploy` record."""
    return f"state/{stage}/chalice-deployed.json"


def record_path(project_dir: Path, stage: str) -> Path:
    """Return where Chalice keeps its record of a stage in a checkout."""
    return Path(project_dir) / ".chalice" / "deployed" / f"{stage}.json"


def load_stage(ssm: Any, config: ChaliceConfig, stage: str) -> dict[str, Any] | None:
    """Return the stage's recorded settings, or None when none were recorded."""
    try:
        value = ssm.get_parameter(Name=state_parameter(config.app_name, stage))["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise
    recorded = json.loads(value)
    return recorded if isinstance(recorded, dict) else None


def merge_stage(config: ChaliceConfig, stage: str, recorded: dict[str, Any]) -> list[str]:
    """Fill what the checkout's stage lacks from the recorded one; return the names filled."""
    if not config.has_stage(stage):
        config.data.setdefault("stages", {})[stage] = copy.deepcopy(recorded)
        return sorted(recorded.get("environment_variables", {})) + [k for k in recorded if k != "environment_variables"]
    local, filled = config.stage(stage), []
    for key, value in recorded.items():
        if key == "environment_variables" and isinstance(value, dict):
            env = local.setdefault("environment_variables", {})
            for name, recorded_value in value.items():
                if not str(env.get(name, "")).strip() and str(recorded_value).strip():
                    env[name] = recorded_value
                    filled.append(name)
        elif key not in local:
            local[key] = copy.deepcopy(value)
            filled.append(key)
    return filled


def save_stage(ssm: Any, config: ChaliceConfig, stage: str) -> str:
    """Record the checkout's stage section in SSM; return the parameter's name."""
    name = state_parameter(config.app_name, stage)
    # Intelligent-Tiering: a standard parameter (free, 4 KB) unless a very long ALLOWED_ACCOUNTS needs more.
    ssm.put_parameter(Name=name, Value=json.dumps(config.stage(stage), indent=1, sort_keys=True), Type="String",
                      Overwrite=True, Tier="Intelligent-Tiering",
                      Description=f"ghcr2ecr: settings of stage {stage} (written by ghcr2ecr deploy and create-app)")
    return name


def restore_record(s3: Any, bucket: str, project_dir: Path, stage: str) -> bool:
    """Put the recorded `chalice deploy` record into a checkout that lacks it; return whether it did."""
    path = record_path(project_dir, stage)
    if path.is_file():
        return False
    try:
        data = s3.get_object(Bucket=bucket, Key=record_key(stage))["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return False
        raise
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def save_record(s3: Any, bucket: str, project_dir: Path, stage: str) -> bool:
    """Copy the checkout's `chalice deploy` record into the bucket; return whether there was one."""
    path = record_path(project_dir, stage)
    if not path.is_file():
        return False
    s3.put_object(Bucket=bucket, Key=record_key(stage), Body=path.read_bytes(), ContentType="application/json")
    return True

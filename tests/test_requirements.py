"""requirements.txt (what Chalice packages for the Lambdas) agrees with pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _normalized(requirement: str) -> str:
    """Return a requirement with its name normalized (PEP 503) and spaces removed."""
    requirement = requirement.replace(" ", "")
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower() + requirement[name.end():]


def _requirements_txt() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [_normalized(line.split("#", 1)[0]) for line in lines if line.split("#", 1)[0].strip()]


def _pyproject_dependencies() -> list[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [_normalized(item) for item in data["project"]["dependencies"]]


# What the Lambda Python runtime provides, so the package leaves it out (requirements.txt says why).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")


def test_requirements_are_pyprojects_runtime_dependencies_without_chalice_and_the_runtimes_sdk() -> None:
    expected = sorted(item for item in _pyproject_dependencies()
                      if not item.startswith("chalice") and not item.startswith(RUNTIME_PROVIDED))
    assert sorted(_requirements_txt()) == expected


def test_the_lambda_package_leaves_the_aws_sdk_to_the_runtime() -> None:
    assert not [item for item in _requirements_txt() if item.startswith(RUNTIME_PROVIDED)]
    assert "boto3>=1.35" in [item.replace(" ", "") for item in _pyproject_dependencies()]  # the floor still holds


def test_chalice_itself_is_not_packaged_into_the_lambdas() -> None:
    assert not [item for item in _requirements_txt() if item.startswith("chalice")]


def test_no_development_tool_is_packaged_into_the_lambdas() -> None:
    names = {re.match(r"[a-z0-9-]+", item).group(0) for item in _requirements_txt()}  # type: ignore[union-attr]
    assert not names & {"pytest", "moto", "cfn-lint", "hypothesis", "pyyaml", "bcrypt", "psutil"}


def test_the_pin_comments_point_at_the_facts_in_this_repository() -> None:
    for name in ("pyproject.toml", "requirements.txt"):
        text = (ROOT / name).read_text()
        assert "docs/FACTS.md §2" in text and "shared FACTS.md" not in text, name
    assert (ROOT / "docs" / "FACTS.md").is_file()


def test_the_secrets_test_bounds_every_command_it_runs() -> None:
    import ast

    tree = ast.parse((ROOT / "tests" / "test_no_secrets.py").read_text())
    runs = [node for node in ast.walk(tree)
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "subprocess.run"]
    assert runs and all(any(k.arg == "timeout" for k in run.keywords) for run in runs)

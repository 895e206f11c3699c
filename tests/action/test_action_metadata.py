"""action.yml against DESIGN.md's contract for the GitHub Action, and the script it runs."""

from __future__ import annotations

import ast
import re
import sys
from typing import Any

import yaml

from tests.action.stub_app import ACTION_YML, ROOT, SCRIPT, action_step, input_variables

EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def metadata() -> dict[str, Any]:
    """action.yml, parsed."""
    return yaml.safe_load(ACTION_YML.read_text())


def test_the_inputs_their_defaults_and_required_flags_are_the_designs() -> None:
    inputs = metadata()["inputs"]

    assert list(inputs) == ["url", "image", "audience", "token", "wait", "timeout-minutes", "fail-on-error"]
    assert {name for name, spec in inputs.items() if spec.get("required")} == {"url", "image"}
    defaults = {name: spec.get("default") for name, spec in inputs.items()}
    assert defaults == {"url": None, "image": None, "audience": None, "token": "${{ github.token }}",
                        "wait": "true", "timeout-minutes": "15", "fail-on-error": "true"}
    # An input's default cannot name another input, so `audience` defaults to `url` in the script.
    assert "`url`" in inputs["audience"]["description"]
    assert all(spec.get("description") for spec in inputs.values())


def test_the_outputs_are_status_image_and_tags_of_the_one_step() -> None:
    outputs = metadata()["outputs"]

    assert list(outputs) == ["status", "image", "tags"]
    assert {name: spec["value"] for name, spec in outputs.items()} == {
        name: "${{ steps.handoff.outputs.%s }}" % name for name in outputs}


def test_it_is_a_composite_action_whose_one_step_runs_the_script_with_python3() -> None:
    runs = metadata()["runs"]
    step = action_step()

    assert runs["using"] == "composite" and len(runs["steps"]) == 1
    assert step["id"] == "handoff" and step["shell"] == "bash"
    assert step["run"].strip() == 'python3 "${{ github.action_path }}/action/handoff.py"'
    assert (ROOT / "action" / "handoff.py").is_file()


def test_no_input_or_other_expression_but_the_action_path_is_interpolated_into_the_run_script() -> None:
    for step in metadata()["runs"]["steps"]:
        expressions = [found.strip() for found in EXPRESSION.findall(step.get("run", ""))]
        assert expressions == ["github.action_path"], step["run"]


def test_every_input_reaches_the_script_as_an_environment_variable_the_script_reads() -> None:
    variables = input_variables()
    source = SCRIPT.read_text()

    assert set(variables) == set(metadata()["inputs"])
    for variable in variables.values():
        assert re.fullmatch(r"INPUT_[A-Z_]+", variable)
        assert 'env.get("%s"' % variable in source


def test_the_script_imports_only_the_standard_library_and_parses_as_python_3_8() -> None:
    tree = ast.parse(SCRIPT.read_text(), feature_version=(3, 8))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}

    assert imported - {"__future__"} <= set(sys.stdlib_module_names)

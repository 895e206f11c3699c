"""The operator subcommands' command line: help that says what an operator needs, flags that mean something."""

from __future__ import annotations

import sys

import pytest

from chalicelib import cli


def test_deploy_help_describes_region_credentials_and_stages(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["deploy", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "AWS_REGION, else AWS_DEFAULT_REGION, else the profile's region" in text
    assert "AWS_PROFILE" in text and "Each stage (--stage, default dev) is a separate deployment" in text
    assert "--compute" in text


def test_destroy_refuses_compute(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        cli.main(["destroy", "--compute", "ec2"])
    assert usage.value.code == 2 and "unrecognized arguments: --compute" in capsys.readouterr().err


@pytest.mark.parametrize("module,named", [("bcrypt", "bcrypt"), ("moto", "moto[server]")])
def test_the_demo_without_its_extra_says_which_pip_install_fixes_it(
    module: str, named: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: importing it fails
    assert cli.main(["demo"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err and "pip install 'ghcr2ecr[demo]'" in err

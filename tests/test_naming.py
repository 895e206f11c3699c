"""Destination names: `<prefix>/<owner>/<repository>`, ECR's rules, never outside the owner's namespace."""

from __future__ import annotations

import pytest

from chalicelib.names import InvalidName, check_repository_variable, destination


@pytest.mark.parametrize("owner,name,expected", [
    ("octo-org", "app", "ghcr/octo-org/app"),
    ("Octo-Org", "App", "ghcr/octo-org/app"),
    ("octo-org", "tools/builder", "ghcr/octo-org/tools/builder"),
    ("octo-org", "my_app.v2", "ghcr/octo-org/my_app.v2"),
])
def test_the_destination_is_prefix_owner_name_lower_cased(owner: str, name: str, expected: str) -> None:
    assert destination("ghcr", owner, name) == expected


def test_an_empty_or_slashed_prefix_is_normalized() -> None:
    assert destination("/mirrors/ghcr/", "o1", "app") == "mirrors/ghcr/o1/app"
    assert destination("", "o1", "app") == "o1/app"


@pytest.mark.parametrize("value", ["../other-org/app", "a/../b", "/abs", "trailing/", "Upper", "a//b", "a..b",
                                   "-lead", "a b", "", " app", "a/./b", "é"])
def test_a_repository_variable_that_could_escape_or_break_ecr_rules_is_refused(value: str) -> None:
    with pytest.raises(InvalidName):
        check_repository_variable(value)


@pytest.mark.parametrize("value", ["app", "mirrors/base", "a-b_c.d/e"])
def test_a_relative_lower_case_repository_variable_is_accepted(value: str) -> None:
    assert check_repository_variable(value) == value


def test_another_owner_named_in_the_variable_stays_inside_this_owner() -> None:
    assert destination("ghcr", "octo-org", "evil-corp/app") == "ghcr/octo-org/evil-corp/app"


def test_an_over_long_name_is_refused() -> None:
    with pytest.raises(InvalidName, match="256"):
        destination("ghcr", "octo-org", "a" * 250)
    assert len(destination("ghcr", "octo-org", "a" * (256 - len("ghcr/octo-org/")))) == 256


def test_an_owner_login_that_is_not_an_ecr_segment_is_refused() -> None:
    with pytest.raises(InvalidName, match="owner"):
        destination("ghcr", "bad--login-", "app")

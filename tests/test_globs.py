"""Tag glob filters: fnmatch-style, validated, never regexes."""

from __future__ import annotations

import fnmatch
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.globs import parse_tag_globs


def test_the_documented_example_selects_releases_and_latest_but_not_release_candidates() -> None:
    tags = parse_tag_globs("v*,latest,!*-rc*")
    assert tags.matches("v1.2.3")
    assert tags.matches("latest")
    assert not tags.matches("v1.2.3-rc1")
    assert not tags.matches("main")


def test_only_excluding_globs_select_every_other_tag() -> None:
    tags = parse_tag_globs("!sha256-*")
    assert tags.matches("v1")
    assert not tags.matches("sha256-abc.sig")


def test_question_mark_and_sets_match_one_character() -> None:
    tags = parse_tag_globs("v?.[0-9],[!a-z]x")
    assert tags.matches("v1.5")
    assert not tags.matches("v10.5")
    assert not tags.matches("v1.a")
    assert tags.matches("9x")
    assert not tags.matches("ax")


def test_matching_is_case_sensitive_and_whole_tag() -> None:
    tags = parse_tag_globs("Latest")
    assert tags.matches("Latest")
    assert not tags.matches("latest")
    assert not tags.matches("Latest2")


def test_spaces_around_items_are_ignored() -> None:
    assert parse_tag_globs(" v* , !v0* ").matches("v1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("v*,,latest", "empty item"),
        ("v*,", "empty item"),
        ("!", "nothing to exclude"),
        ("v[0-9", "unclosed"),
        ("v]", "without"),
        ("a!b", "only allowed at the start"),
        ("v(1|2)", "characters a tag cannot contain"),
        ("v 1", "characters a tag cannot contain"),
        ("[z-a]", "reversed range"),
        ("x" * 129, "longer than"),
        (",".join(["a"] * 101), "at most"),
    ],
)
def test_invalid_lists_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_tag_globs(text)


def test_a_hostile_glob_matches_in_a_few_milliseconds() -> None:
    tags = parse_tag_globs("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b")
    start = time.perf_counter()
    assert not tags.matches("a" * 128)
    assert time.perf_counter() - start < 0.5


_TAG_CHARS = st.sampled_from(list("ab.-_1"))


@given(
    glob=st.text(alphabet=st.sampled_from(list("ab.-_1*?")), min_size=1, max_size=12),
    tag=st.text(alphabet=_TAG_CHARS, min_size=1, max_size=16),
)
def test_matching_agrees_with_fnmatch_for_stars_and_question_marks(glob: str, tag: str) -> None:
    assert parse_tag_globs(glob).matches(tag) == fnmatch.fnmatchcase(tag, glob)

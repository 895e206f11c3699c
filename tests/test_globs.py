"""Tag glob filters: fnmatch-style, validated, never regexes."""

from __future__ import annotations

import fnmatch
import sys
from types import FrameType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib import globs
from chalicelib.globs import TagFilter, parse_tag_globs


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


def _steps(tag_filter: TagFilter, tag: str) -> tuple[bool, int]:
    """Match a tag and count the lines chalicelib/globs.py executed (a step count, never a clock)."""
    steps = 0

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal steps
        if frame.f_code.co_filename != globs.__file__:
            return None
        if event == "line":
            steps += 1
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        matched = tag_filter.matches(tag)
    finally:
        sys.settrace(previous)
    return matched, steps


def test_a_hostile_glob_takes_at_most_glob_times_tag_steps() -> None:
    hostile = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b"
    tags = parse_tag_globs(hostile)
    matched, steps = _steps(tags, "a" * 128)
    assert not matched
    assert steps <= 12 * len(hostile) * 128  # a bounded number of lines per (glob position, tag position) pair
    # Doubling the tag at most about doubles the work (a backtracking matcher would grow exponentially).
    counts = [_steps(tags, "a" * n)[1] for n in (32, 64, 128)]
    assert counts[1] <= 2.2 * counts[0] and counts[2] <= 2.2 * counts[1]


_TAG_CHARS = st.sampled_from(list("ab.-_1"))


@given(
    glob=st.text(alphabet=st.sampled_from(list("ab.-_1*?")), min_size=1, max_size=12),
    tag=st.text(alphabet=_TAG_CHARS, min_size=1, max_size=16),
)
def test_matching_agrees_with_fnmatch_for_stars_and_question_marks(glob: str, tag: str) -> None:
    assert parse_tag_globs(glob).matches(tag) == fnmatch.fnmatchcase(tag, glob)

"""The planner's rules as plain functions of what was observed: which tags a sync may set, which cost a source
request, in what order the budget is spent, and which checked tags it keeps (chalicelib/sync/desire.py)."""

from __future__ import annotations

from chalicelib.globs import parse_tag_globs
from chalicelib.sync.desire import candidates, chosen, prioritised, split_free

OLD, NEW = "sha256:" + "1" * 64, "sha256:" + "2" * 64
SIGNATURE = "sha256-" + "2" * 64 + ".sig"


def test_candidates_leave_out_cosign_tags_tags_already_taken_and_tags_the_filter_refuses() -> None:
    listed = ["v1.2.3", "v1.2", "latest", SIGNATURE, "v1.3.0-rc1", "sha-4a1d7e0"]
    assert candidates(listed, {"v1.2.3"}, parse_tag_globs("v*,latest,!*-rc*")) == ["v1.2", "latest"]
    assert candidates(listed, set(), None) == ["v1.2.3", "v1.2", "latest", "v1.3.0-rc1", "sha-4a1d7e0"]


def test_an_alias_the_destination_already_holds_on_a_root_digest_costs_no_source_request() -> None:
    current = {"v1.2": NEW, "v1": OLD, "latest": NEW, "v1.2.2": OLD}
    free, rest = split_free(["v1.2", "v1", "latest", "v1.2.2", "v1.2.4"], current, {NEW})
    assert free == {"v1.2": NEW, "latest": NEW}
    assert rest == ["v1", "v1.2.2", "v1.2.4"]  # moved floating tags, old releases, tags the destination lacks


def test_the_budget_goes_first_to_floating_tags_then_to_tags_the_destination_lacks_then_the_rest() -> None:
    current = {"v1": OLD, "latest": OLD, "v1.2.2": OLD, "v1.0.0": "sha256:" + "0" * 64}
    order = prioritised(["v1.0.0", "v1.2.2", "v1.2.4", "v1", "v9", "latest"], shared={"v1", "latest", "v1.2.2"},
                        current=current)
    assert order == ["v1.2.2", "v1", "latest", "v1.2.4", "v9", "v1.0.0"]  # stable within a rank


def test_with_aliases_only_checked_tags_on_a_root_digest_are_kept_and_every_tag_with_all_tags() -> None:
    resolved = {"v1": NEW, "v1.2.2": OLD, "gone": None}
    assert chosen(resolved, {NEW}, select_all=False) == {"v1": NEW}
    assert chosen(resolved, {NEW}, select_all=True) == {"v1": NEW, "v1.2.2": OLD}

"""The desired state of one sync: which tag should point at which digest, before anything is copied.

Sources of desired tags, in this order:
1. explicit `--tag`s, each resolved against the source now (a GET: its manifest is needed anyway);
2. with --all-tags, or --tags without --aliases: every listed tag passing the filter;
3. with --aliases: every listed tag passing the filter that points at a root digest (the `--digest` and
   the explicit tags' digests), floating tags (`v1`, `latest`) included;
4. cosign tags follow the digests they sign, after those are in the destination (chalicelib/sync/engine.py).

Cost: a tag the destination already holds on a root digest is taken as it is (no source request); every
other candidate costs one HEAD on the source, up to the budget, spent in this priority order:
1. tags sharing their destination digest with other tags (floating aliases: they are the ones that move);
2. tags the destination lacks (a new release's tags);
3. the rest (tags the destination holds alone, typically an older release's own version tag).
Candidates past the budget are not checked, and the report lists them (`tags.unchecked`).

`desire` observes (explicit tags, the listing, the destination's digests, the budget's HEADs); the rules
above are the pure functions below it (`candidates`, `split_free`, `prioritised`, `chosen`), which
tests/sync/test_desire_rules.py specifies with plain dicts.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from chalicelib.sync.dest_state import DestinationState
from chalicelib.globs import TagFilter
from chalicelib.sync.bounds import alongside, batches
from chalicelib.sync.signatures import COSIGN_TAG
from chalicelib.sync.source_index import SourceIndex

DEFAULT_BUDGET = 10_000  # source HEADs per sync for listed tags (GHCR's pull limit is reported at 44,000/minute)
HEAD_BATCH = 500


@dataclass
class Desired:
    """Tag → digest the destination should end with, and the digests to copy even without a tag."""

    tags: dict[str, str] = field(default_factory=dict)
    roots: list[str] = field(default_factory=list)  # digests whose trees are copied (tagged or not)
    aliases: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # explicit tags the source does not have


def candidates(listed: Sequence[str], taken: Collection[str], tag_filter: TagFilter | None) -> list[str]:
    """Return the listed tags a sync may set: not cosign's (they follow their images), not already taken, filtered."""
    return [t for t in listed if not COSIGN_TAG.fullmatch(t) and t not in taken
            and (tag_filter is None or tag_filter.matches(t))]


def split_free(tags: Sequence[str], current: Mapping[str, str | None], roots: Collection[str]
               ) -> tuple[dict[str, str], list[str]]:
    """Split alias candidates: those the destination already holds on a root digest (right as they are, no
    source request) and the rest, to be checked on the source."""
    free = {t: d for t in tags if (d := current.get(t)) is not None and d in roots}
    return free, [t for t in tags if t not in free]


def prioritised(tags: Sequence[str], shared: Collection[str], current: Mapping[str, str | None]) -> list[str]:
    """Order candidates for the budget: floating aliases first, then tags the destination lacks, then the rest."""
    rank = {tag: 0 if tag in shared else 1 if not current.get(tag) else 2 for tag in tags}
    return sorted(tags, key=rank.__getitem__)  # stable: listing order within a rank


def chosen(resolved: Mapping[str, str | None], roots: Collection[str], select_all: bool) -> dict[str, str]:
    """Return the checked tags a sync sets: every found one (select_all), else those on a root digest (aliases)."""
    return {t: d for t, d in resolved.items() if d is not None and (select_all or d in roots)}


def _spend(index: SourceIndex, tags: Sequence[str], budget: int,
           read: bool = False) -> tuple[dict[str, str | None], list[str]]:
    """HEAD (or GET, when `read`) as many of these tags as the budget allows, in bounded batches; return digests
    and the rest."""
    cached = [t for t in tags if t in index.digests]  # resolved earlier in this run: free
    todo = [t for t in tags if t not in index.digests]
    allowed = max(0, budget - index.heads)
    resolved: dict[str, str | None] = index.resolve(cached)
    for batch in batches(todo[:allowed], HEAD_BATCH):
        resolved.update(index.resolve(batch, read=read))
    return resolved, todo[allowed:]


def desire(index: SourceIndex, dest: DestinationState, *, explicit: Sequence[str], digest: str | None,
           select_all: bool, aliases: bool, tag_filter: TagFilter | None, budget: int = DEFAULT_BUDGET) -> Desired:
    """Compute the desired state (listing the source only when aliases or a selection need it)."""
    desired = Desired()
    for tag, found in index.fetch(list(explicit)).items():
        if found is None:
            desired.missing.append(tag)
        else:
            desired.tags[tag] = found
    desired.roots = list(dict.fromkeys([*([digest] if digest else []), *desired.tags.values()]))
    if not (select_all or aliases):
        return desired
    loading = alongside(dest.load)  # the destination's listing goes out with the source's
    try:
        listed = index.listed()
    finally:
        loading()
    wanted = candidates(listed, desired.tags, tag_filter)
    if select_all and len(wanted) <= budget - index.heads:
        # Every candidate gets its HEAD, so their order does not matter: both sides are read at once, and the
        # source's answers land in the index (the _spend below then costs no request).
        theirs = alongside(lambda: dest.digests(wanted))
        _spend(index, wanted, budget, read=dest.empty)  # a first copy reads every manifest
        current = theirs()
    else:
        current = dest.digests(wanted)
    alias_mode = aliases and not select_all
    free, rest = split_free(wanted, current, set(desired.roots)) if alias_mode else ({}, wanted)
    desired.tags.update(free)
    resolved, desired.unchecked = _spend(index, prioritised(rest, dest.shared(), current), budget)
    desired.tags.update(chosen(resolved, desired.roots, select_all))
    desired.aliases = [t for t in wanted if t in desired.tags] if alias_mode else []
    if select_all:
        desired.roots = list(dict.fromkeys([*desired.roots, *desired.tags.values()]))
    return desired


def diff(wanted: Mapping[str, str], dest: DestinationState) -> tuple[dict[str, str], list[str]]:
    """Split tag → digest into the updates the destination lacks and the tags already right."""
    current = dest.digests(list(wanted))
    updates = {t: d for t, d in wanted.items() if current.get(t) != d}
    return updates, [t for t in wanted if t not in updates]

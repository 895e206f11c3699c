"""Setting tags on the destination: last, in an order that never races, the way immutable ECR allows.

ECR refuses to push a tag that exists in an immutable repository even when it already names the same
digest (`ImageTagAlreadyExistsException`; on the distribution API `TAG_INVALID ... cannot be
overwritten because the repository is immutable`, FACTS.md §8). So a tag already on the digest is left
alone; a refusal to move it elsewhere is a conflict, not a crash.

A tag PUT sends the whole manifest again, and the registry stores it again: docker-registry rewrites the
manifest's blob in place while checking the references of others. Two PUTs of one manifest (`v1` and
`latest` on an index), or a child's tag (`v1-arm64`) written while its index's tag is checked, then fail
at random with DIGEST_INVALID / MANIFEST_BLOB_UNKNOWN. So tags go in waves, children's before their
parents', and the tags of one digest one after another; ECR is not assumed to be safer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from chalicelib.sync.bounds import bounded_map
from chalicelib.sync.copy import Copier
from chalicelib.registry.errors import CopyError, RegistryError
from chalicelib.registry.manifests import Manifest, head_manifest, put_manifest

UNKNOWN = "?"  # the destination's current digest for a tag has not been read
Outcome = tuple[str, str, str | None]  # tag, "set" | "unchanged" | "conflict" | "error", message


class TagConflict(Exception):
    """An immutable destination tag already points at another digest."""


def set_tag(copier: Copier, tag: str, digest: str, current: str | None = UNKNOWN) -> Literal["set", "unchanged"]:
    """Point a destination tag at a digest whose content is already there; raise TagConflict if immutable.

    `current` is the digest the destination's tag has now (None: absent), or UNKNOWN to HEAD it first.
    """
    if current == UNKNOWN:
        head = head_manifest(copier.dest, tag, actions="pull,push")
        current = head.digest if head is not None else None
    if current == digest:
        return "unchanged"
    manifest = copier.fetch(digest)
    if manifest is None:
        raise RegistryError("GET", f"{copier.source.repository}@{digest}", 404, detail="manifest vanished")
    try:
        put_manifest(copier.dest, tag, manifest)
    except RegistryError as exc:
        if immutable_conflict(exc):
            held = f" (it points at {current})" if current else ""
            raise TagConflict(f"{copier.dest.repository}:{tag} cannot move to {digest}{held}: "
                              "the repository's tags are immutable") from None
        raise
    return "set"


def tag_outcome(copier: Copier, tag: str, digest: str, current: str | None = UNKNOWN) -> tuple[str, str | None]:
    """Set one tag; return its outcome (set, unchanged, conflict, error) and a message for the last two."""
    try:
        return set_tag(copier, tag, digest, current), None
    except TagConflict as exc:
        return "conflict", str(exc)
    except CopyError as exc:
        return "error", f"setting tag {tag!r}: {exc}"


def set_tags(copier: Copier, pool: ThreadPoolExecutor, updates: Mapping[str, str],
             current: Mapping[str, str | None]) -> list[Outcome]:
    """Set tags (tag → digest) in waves that never race; `current` holds digests already read (else HEAD)."""
    digests = list(dict.fromkeys(updates.values()))
    list(bounded_map(pool, _fetch_quietly(copier), digests))  # their children decide the order; the PUTs need them
    outcomes: list[Outcome] = []
    for wave in tag_waves(updates, copier.manifests):
        def run(group: Sequence[str]) -> list[Outcome]:
            return [(tag, *tag_outcome(copier, tag, updates[tag], current.get(tag, UNKNOWN))) for tag in group]

        for done in bounded_map(pool, run, wave):
            outcomes += done
    return outcomes


def _fetch_quietly(copier: Copier) -> Callable[[str], None]:
    """Return a function reading a manifest into the copier's cache; a failure shows at its tag's PUT."""
    def fetch(digest: str) -> None:
        try:
            copier.fetch(digest)
        except CopyError:
            pass
    return fetch


def tag_waves(updates: Mapping[str, str], manifests: Mapping[str, Manifest]) -> list[list[list[str]]]:
    """Order tag updates: waves run one after another, a wave's groups in parallel, a group's tags in turn.

    A digest's group goes after every group whose digest lies below it in the tree (its children's
    tags first); a digest above k other targeted digests has k such groups below, so waves are by k.
    """
    by_digest: dict[str, list[str]] = defaultdict(list)
    for tag, digest in updates.items():
        by_digest[digest].append(tag)
    below = {digest: len(_descendants(digest, manifests) & by_digest.keys()) for digest in by_digest}
    waves: dict[int, list[list[str]]] = defaultdict(list)
    for digest, tags in by_digest.items():
        waves[below[digest]].append(tags)
    return [waves[k] for k in sorted(waves)]


def _descendants(digest: str, manifests: Mapping[str, Manifest]) -> set[str]:
    """Return every manifest digest below this one that the known manifests name (iteratively)."""
    seen: set[str] = set()
    stack = [digest]
    while stack:
        manifest = manifests.get(stack.pop())
        if manifest is None:
            continue
        for child in manifest.children():
            if child.digest not in seen and child.digest != digest:
                seen.add(child.digest)
                stack.append(child.digest)
    return seen


def immutable_conflict(exc: RegistryError) -> bool:
    """Recognise a registry's refusal to move an immutable tag (ECR: TAG_INVALID ... immutable)."""
    text = str(exc).lower()
    if exc.codes & {"TAG_INVALID", "TAG_IMMUTABLE"}:
        return "immutable" in text or "already exists" in text
    return "imagetagalreadyexists" in text

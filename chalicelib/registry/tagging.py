"""Setting tags on the destination the way immutable ECR repositories allow.

ECR refuses to push a tag that exists in an immutable repository even when it already names the same
digest (`ImageTagAlreadyExistsException`; on the distribution API `TAG_INVALID ... cannot be
overwritten because the repository is immutable`, FACTS.md §8). So: HEAD the tag first and leave it
alone when it already points at the digest; a refusal to move it elsewhere is a conflict, not a crash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from chalicelib.registry.copy import Copier, CopyError
from chalicelib.registry.errors import RegistryError
from chalicelib.registry.manifests import Descriptor, head_manifest, put_manifest


class TagConflict(Exception):
    """An immutable destination tag already points at another digest."""


def settled_tags(copier: Copier, pool: ThreadPoolExecutor, tags: Sequence[str],
                 digests: Mapping[str, str]) -> list[str]:
    """Return the tags the destination already points at their wanted digest (HEADs in parallel).

    Their manifests are then known to be present (a registry accepts a manifest only once everything it
    references is there), so a re-run with nothing missing costs one HEAD per tag and moves nothing.
    """
    tags = [t for t in tags if t in digests]
    heads = pool.map(lambda tag: head_manifest(copier.dest, tag, actions="pull,push"), tags)
    settled = [t for t, head in zip(tags, heads) if head is not None and head.digest == digests[t]]
    known = {digests[t] for t in settled} - copier.present
    copier.present.update(known)
    copier.stats.add("manifests_skipped", len(known))
    return settled


def set_tag(copier: Copier, tag: str, digest: str) -> Literal["set", "unchanged"]:
    """Point a destination tag at a digest whose content is already there; raise TagConflict if immutable."""
    current: Descriptor | None = head_manifest(copier.dest, tag, actions="pull,push")
    if current is not None and current.digest == digest:
        return "unchanged"
    manifest = copier.fetch(digest)
    if manifest is None:
        raise RegistryError("GET", f"{copier.source.repository}@{digest}", 404, detail="manifest vanished")
    try:
        put_manifest(copier.dest, tag, manifest)
    except RegistryError as exc:
        if immutable_conflict(exc):
            held = f" (it points at {current.digest})" if current is not None and current.digest else ""
            raise TagConflict(f"{copier.dest.repository}:{tag} cannot move to {digest}{held}: "
                              "the repository's tags are immutable") from None
        raise
    return "set"


def tag_outcome(copier: Copier, tag: str, digest: str) -> tuple[str, str | None]:
    """Set one tag; return its outcome (set, unchanged, conflict, error) and a message for the last two."""
    try:
        return set_tag(copier, tag, digest), None
    except TagConflict as exc:
        return "conflict", str(exc)
    except CopyError as exc:
        return "error", f"setting tag {tag!r}: {exc}"


def immutable_conflict(exc: RegistryError) -> bool:
    """Recognise a registry's refusal to move an immutable tag (ECR: TAG_INVALID ... immutable)."""
    text = str(exc).lower()
    if exc.codes & {"TAG_INVALID", "TAG_IMMUTABLE"}:
        return "immutable" in text or "already exists" in text
    return "imagetagalreadyexists" in text

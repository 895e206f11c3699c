"""Cosign signature tags: which ones follow a copied image, and which asked-for ones are skipped.

cosign stores what it attaches to an image `sha256:<hex>` as manifests tagged `sha256-<hex>.sig`
(signatures), `.att` (attestations) and `.sbom` in the image's own repository (sigstore/cosign
`pkg/oci/remote`, "tag-based discovery"). Each such push is a `registry_package` event of its own, so a
build may be asked to set one of these tags explicitly: it is set only when the image it signs is
copied in the same run or already in the destination, so that a signature of an image left behind (by
`GHCR2ECR_TAGS`, or never pushed there) creates nothing.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor

from chalicelib.registry.copy import Copier
from chalicelib.registry.manifests import head_manifest, list_tags

COSIGN_TAG = re.compile(r"sha256-([a-f0-9]{64})\.(sig|att|sbom)")
NOT_MIRRORED = "signed image not mirrored"
NOT_WANTED = "signatures not copied (--no-signatures)"


def signed_digest(tag: str) -> str | None:
    """Return the digest a cosign-shaped tag belongs to (`sha256-<hex>.sig` → `sha256:<hex>`), else None."""
    match = COSIGN_TAG.fullmatch(tag)
    return f"sha256:{match.group(1)}" if match else None


def skipped_targets(copier: Copier, pool: ThreadPoolExecutor, tags: Sequence[str], *, signatures: bool,
                    known: Collection[str]) -> dict[str, str]:
    """Return the asked-for cosign tags not to set, each with its reason (HEADs the destination in parallel).

    `known` holds the digests this run copies or found in the destination already.
    """
    if not signatures:
        return {tag: NOT_WANTED for tag in tags}
    unknown = [tag for tag in tags if signed_digest(tag) not in known]
    heads = pool.map(lambda tag: head_manifest(copier.dest, signed_digest(tag) or "", actions="pull,push"), unknown)
    return {tag: NOT_MIRRORED for tag, head in zip(unknown, heads) if head is None}


def discover(copier: Copier, known: Collection[str], source_tags: list[str] | None,
             exclude: Collection[str]) -> list[str]:
    """Return the source's cosign tags of known digests (listing the source's tags unless given)."""
    tags = source_tags if source_tags is not None else list_tags(copier.source) or []
    return [t for t in tags if signed_digest(t) in known and t not in exclude]

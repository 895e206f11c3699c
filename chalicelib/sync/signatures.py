"""Cosign signature tags: which ones follow an image in the destination, and which asked-for ones are skipped.

cosign stores what it attaches to an image `sha256:<hex>` as manifests tagged `sha256-<hex>.sig`
(signatures), `.att` (attestations) and `.sbom` in the image's own repository (sigstore/cosign
`pkg/oci/remote`, "tag-based discovery"). Each such push is a `registry_package` event of its own, so a
build may be asked to set one of these tags explicitly. Either way a cosign tag is set only when the image
it signs is in the destination (copied by this run, or there already), so that a signature of an image
left behind (by `GHCR2ECR_TAGS`, a failed copy, or never pushed there) creates nothing.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from chalicelib.sync.bounds import bounded_map
from chalicelib.sync.copy import Copier
from chalicelib.registry.manifests import head_manifest

COSIGN_TAG = re.compile(r"sha256-([a-f0-9]{64})\.(sig|att|sbom)")
NOT_MIRRORED = "signed image not mirrored"
NOT_WANTED = "signatures not copied (--no-signatures)"


def signed_digest(tag: str) -> str | None:
    """Return the digest a cosign-shaped tag belongs to (`sha256-<hex>.sig` → `sha256:<hex>`), else None."""
    match = COSIGN_TAG.fullmatch(tag)
    return f"sha256:{match.group(1)}" if match else None


def skipped_targets(copier: Copier, pool: ThreadPoolExecutor, tags: Sequence[str], *,
                    signatures: bool) -> dict[str, str]:
    """Return the asked-for cosign tags not to set, each with its reason.

    A signed digest this copier has not seen in the destination is HEADed there (in parallel); one found
    is noted as present.
    """
    if not signatures:
        return {tag: NOT_WANTED for tag in tags}
    unknown = list(dict.fromkeys(d for d in map(signed_digest, tags) if d and d not in copier.present))
    heads = bounded_map(pool, lambda digest: head_manifest(copier.dest, digest, actions="pull,push"), unknown)
    copier.note_present(digest for digest, head in zip(unknown, heads) if head is not None)
    return {tag: NOT_MIRRORED for tag in tags if signed_digest(tag) not in copier.present}


def discover(listed: Iterable[str], signed: Collection[str], exclude: Collection[str]) -> list[str]:
    """Return the listed cosign tags of these digests, except those in `exclude`."""
    return [t for t in listed if signed_digest(t) in signed and t not in exclude]

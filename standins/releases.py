"""A release series as docker/build-push-action, docker/metadata-action and cosign publish it to ghcr.io.

Each release is one OCI index naming a linux/amd64 and a linux/arm64 image, then buildx's attestation
manifest of each (platform `unknown/unknown`, annotated with the image it describes, one in-toto layer).
Both images share the base layers (a few MiB each), which every release of the series shares too; each
image adds a layer of its release's own. cosign signs the index (`sha256-<hex>.sig`), and metadata-action
tags it `vX.Y.Z vX.Y vX latest sha-<7 hex>`, so `vX.Y`, `vX` and `latest` move from release to release.

    releases = series("octo/app", 3)                 # 1.0.0, 1.0.1, 1.1.0
    for release in releases:
        publish(ghcr, "octo-org/app", release)     # the index with its tags, then its signature
    expected_tags(releases)                          # {tag: digest} the registry now holds
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from standins.ghcr_ecr import Target, push_to
from standins.images import (OCI_CONFIG, Blob, Manifest, cosign_signature, image_manifest, index, signature_tag,
                             tar_gz_layer)
from standins.push import PushedImage

MiB = 1 << 20
PLATFORMS: tuple[dict[str, str], ...] = (
    {"architecture": "amd64", "os": "linux"},
    {"architecture": "arm64", "os": "linux"},
)
ATTESTATION_PLATFORM = {"architecture": "unknown", "os": "unknown"}
IN_TOTO = "application/vnd.in-toto+json"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v0.2"
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
BUMPS = ("patch", "minor", "major")  # the series' releases bump these in turn, from 1.0.0


@dataclass(frozen=True)
class Attestation(Manifest):
    """buildx's attestation manifest: listed in the index as `unknown/unknown`, naming the image it describes."""

    describes: str = ""

    def descriptor(self) -> dict:
        """Return the index entry buildx writes: the annotations that tie it to its image, and its platform."""
        desc = {k: v for k, v in super().descriptor().items() if k != "platform"}
        desc["annotations"] = {REFERENCE_DIGEST: self.describes, REFERENCE_TYPE: "attestation-manifest"}
        desc["platform"] = dict(ATTESTATION_PLATFORM)
        return desc


@dataclass(frozen=True)
class Release:
    """One published release: its index (images and attestations), cosign signature, and metadata-action's tags."""

    version: str
    index: Manifest
    signature: Manifest
    tags: tuple[str, ...]

    @property
    def digest(self) -> str:
        """Return the index's digest (what build-push-action outputs as `digest`)."""
        return self.index.digest

    @property
    def signature_tag(self) -> str:
        """Return the signature's tag, `sha256-<hex of the index>.sig`."""
        return signature_tag(self.index.digest)

    @property
    def images(self) -> tuple[Manifest, ...]:
        """Return the platform images, amd64 first."""
        return tuple(child for child in self.index.children if not isinstance(child, Attestation))

    @property
    def attestations(self) -> tuple[Attestation, ...]:
        """Return the attestation manifests, in the images' order."""
        return tuple(child for child in self.index.children if isinstance(child, Attestation))

    @property
    def manifests(self) -> tuple[str, ...]:
        """Return every manifest digest a registry holds for this release: the index tree and the signature."""
        return (*(m.digest for m in self.index.walk()), self.signature.digest)

    def blobs(self) -> dict[str, Blob]:
        """Return every distinct blob of the index tree and the signature, by digest."""
        return {**self.index.all_blobs(), **self.signature.all_blobs()}


def versions(count: int) -> list[tuple[int, int, int]]:
    """Return `count` successive versions from 1.0.0, bumping patch, minor and major in turn."""
    found, (major, minor, patch) = [], (1, 0, 0)
    for n in range(count):
        if n:
            bump = BUMPS[(n - 1) % len(BUMPS)]
            major, minor, patch = ((major, minor, patch + 1) if bump == "patch" else
                                   (major, minor + 1, 0) if bump == "minor" else (major + 1, 0, 0))
        found.append((major, minor, patch))
    return found


def release_tags(version: tuple[int, int, int], commit: str) -> tuple[str, ...]:
    """Return metadata-action's tags for a semver release: `vX.Y.Z vX.Y vX latest sha-<7 hex>`."""
    major, minor, patch = version
    return (f"v{major}.{minor}.{patch}", f"v{major}.{minor}", f"v{major}", "latest", f"sha-{commit[:7]}")


@functools.lru_cache(maxsize=64)
def layer(seed: str, size: int) -> Blob:
    """Return a real gzip'd tar layer of about `size` bytes of seeded content (incompressible), built once."""
    files = max(1, round(size / MiB))
    return tar_gz_layer(seed, files=files, file_size=max(1, size // files))


def _config(platform: dict[str, str], layers: Sequence[Blob], source: str, version: str, commit: str) -> Blob:
    """Return an image config carrying metadata-action's OCI labels (the check run reads `revision`)."""
    labels = {"org.opencontainers.image.created": "2026-01-01T00:00:00Z",
              "org.opencontainers.image.revision": commit,
              "org.opencontainers.image.source": f"https://github.com/{source}",
              "org.opencontainers.image.title": source.rsplit("/", 1)[-1],
              "org.opencontainers.image.version": version}
    config = {"architecture": platform["architecture"], "os": platform["os"], "created": "2026-01-01T00:00:00Z",
              "config": {"Cmd": ["/app"], "Labels": labels, "WorkingDir": "/"},
              "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
              "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"COPY {version} /app"}]}
    return Blob.of(OCI_CONFIG, json.dumps(config, sort_keys=True).encode())


def _attestation(image: Manifest, source: str, version: str, commit: str) -> Attestation:
    """Return buildx's `mode=min` provenance attestation of one platform image."""
    platform = image.platform or {}
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1", "predicateType": SLSA_PROVENANCE,
        "subject": [{"name": f"pkg:docker/{source}@v{version}?platform={platform['os']}%2F{platform['architecture']}",
                     "digest": {"sha256": image.digest.split(":", 1)[1]}}],
        "predicate": {"builder": {"id": f"https://github.com/{source}/actions/runs/1"},
                      "buildType": "https://mobyproject.org/buildkit@v1",
                      "invocation": {"configSource": {"entryPoint": "Dockerfile"},
                                     "environment": {"platform": f"{platform['os']}/{platform['architecture']}"}},
                      "metadata": {"buildInvocationID": commit, "completeness": {"environment": True}},
                      "materials": [{"uri": f"https://github.com/{source}", "digest": {"sha1": commit}}]},
    }
    statement_layer = Blob.of(IN_TOTO, json.dumps(statement, sort_keys=True).encode(),
                              {"in-toto.io/predicate-type": SLSA_PROVENANCE})
    config = Blob.of(OCI_CONFIG, json.dumps({"architecture": "unknown", "os": "unknown", "config": {},
                                             "rootfs": {"type": "layers", "diff_ids": [statement_layer.digest]}},
                                            sort_keys=True).encode())
    made = image_manifest(config, [statement_layer])
    return Attestation(made.media_type, made.raw, made.blobs, (), dict(ATTESTATION_PLATFORM), image.digest)


def series(seed: str, count: int = 3, *, base_size: int = 3 * MiB, base_layers: int = 2, app_size: int = 256 * 1024,
           base: str | None = None, platforms: Sequence[dict[str, str]] = PLATFORMS) -> list[Release]:
    """Return `count` successive releases of one package (`seed` names it and seeds its own layers).

    `base_layers` layers of about `base_size` bytes each, seeded by `base` (default `seed`), are shared by
    every platform and release: two packages built on the same `base` share them too. Each platform image
    of a release adds a layer of about `app_size` bytes of its own.
    """
    shared = [layer(f"{base or seed}/base{i}", base_size) for i in range(base_layers)]
    releases = []
    for number in versions(count):
        version = ".".join(map(str, number))
        commit = hashlib.sha1(f"{seed}@{version}".encode()).hexdigest()
        images = []
        for platform in platforms:
            layers = [*shared, layer(f"{seed}/{version}/{platform['os']}-{platform['architecture']}", app_size)]
            config = _config(platform, layers, seed, version, commit)
            images.append(image_manifest(config, layers, platform=dict(platform)))
        attestations = [_attestation(image, seed, version, commit) for image in images]
        top = index([*images, *attestations])
        releases.append(Release(version, top, cosign_signature(top, seed=f"{seed}@{version}"),
                                release_tags(number, commit)))
    return releases


def publish(target: Target, repository: str, release: Release) -> PushedImage:
    """Push a release as CI does: the index tree and its tags (build-push-action), then its signature (cosign)."""
    pushed = push_to(target, repository, release.index, release.tags)
    push_to(target, repository, release.signature, (release.signature_tag,))
    return pushed


def expected_tags(releases: Iterable[Release]) -> dict[str, str]:
    """Return tag -> digest once these releases are published in order: later releases take the moving tags."""
    tags: dict[str, str] = {}
    for release in releases:
        tags.update({tag: release.digest for tag in release.tags})
        tags[release.signature_tag] = release.signature.digest
    return tags


def new_blobs(release: Release, before: Iterable[Release]) -> dict[str, int]:
    """Return digest -> size of the release's blobs that none of the releases `before` has."""
    held = {digest for earlier in before for digest in earlier.blobs()}
    return {digest: blob.size for digest, blob in release.blobs().items() if digest not in held}


def shared_blobs(release: Release, before: Iterable[Release]) -> dict[str, int]:
    """Return digest -> size of the release's blobs that one of the releases `before` already has."""
    held = {digest for earlier in before for digest in earlier.blobs()}
    return {digest: blob.size for digest, blob in release.blobs().items() if digest in held}

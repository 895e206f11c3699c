"""Deterministic test images built in Python: OCI indexes, Docker manifest lists, large layers, signatures,
artifacts."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
COSIGN_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
DEFAULT_PLATFORMS: tuple[dict[str, str], ...] = (
    {"os": "linux", "architecture": "amd64"},
    {"os": "linux", "architecture": "arm64"},
    {"os": "linux", "architecture": "arm", "variant": "v7"},
)
CHUNK = 1 << 20


def sha256_digest(data: bytes) -> str:
    """Return `sha256:<hex>` of the bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def random_chunks(seed: str, size: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """Yield `size` pseudo-random bytes, the same for the same seed, in chunks, never all in memory."""
    rng = random.Random(seed)
    remaining = size
    while remaining > 0:
        n = min(chunk, remaining)
        remaining -= n
        yield rng.randbytes(n)


@dataclass(frozen=True)
class Blob:
    """A config or layer blob: bytes in memory, or a generator for large ones."""

    media_type: str
    digest: str
    size: int
    data: bytes | None = None
    generate: Callable[[], Iterator[bytes]] | None = field(default=None, compare=False, repr=False)
    annotations: dict[str, str] | None = field(default=None, compare=False)

    @classmethod
    def of(cls, media_type: str, data: bytes, annotations: dict[str, str] | None = None) -> Blob:
        """Return an in-memory blob."""
        return cls(media_type, sha256_digest(data), len(data), data, None, annotations)

    @classmethod
    def generated(cls, media_type: str, seed: str, size: int) -> Blob:
        """Return a blob of `size` seeded random bytes, hashed once by streaming."""
        h = hashlib.sha256()
        for part in random_chunks(seed, size):
            h.update(part)
        return cls(media_type, "sha256:" + h.hexdigest(), size, None, lambda: random_chunks(seed, size))

    def chunks(self) -> Iterator[bytes]:
        """Yield the blob's bytes in chunks."""
        if self.data is not None:
            yield self.data
        elif self.generate is not None:
            yield from self.generate()

    def descriptor(self) -> dict:
        """Return this blob's OCI descriptor."""
        desc: dict = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            desc["annotations"] = self.annotations
        return desc


@dataclass(frozen=True)
class Manifest:
    """A manifest's exact bytes with what it references: blobs (image) or child manifests (index)."""

    media_type: str
    raw: bytes
    blobs: tuple[Blob, ...] = ()
    children: tuple[Manifest, ...] = ()
    platform: dict[str, str] | None = None

    @property
    def digest(self) -> str:
        """Return `sha256:<hex>` of the raw bytes."""
        return sha256_digest(self.raw)

    @property
    def is_index(self) -> bool:
        """Return whether this is an OCI index or a Docker manifest list."""
        return self.media_type in INDEX_TYPES

    def descriptor(self) -> dict:
        """Return this manifest's descriptor, with its platform when it has one."""
        desc: dict = {"mediaType": self.media_type, "digest": self.digest, "size": len(self.raw)}
        if self.platform:
            desc["platform"] = self.platform
        return desc

    def walk(self) -> Iterator[Manifest]:
        """Yield every manifest of the tree, children before their parent."""
        for child in self.children:
            yield from child.walk()
        yield self

    def all_blobs(self) -> dict[str, Blob]:
        """Return every distinct blob of the tree by digest."""
        return {blob.digest: blob for m in self.walk() for blob in m.blobs}

    def json(self) -> dict:
        """Return the parsed manifest."""
        return json.loads(self.raw)


def _canonical(obj: dict) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=False).encode() + b"\n"


def tar_gz_layer(seed: str, files: int = 3, file_size: int = 2048, docker: bool = False) -> Blob:
    """Return a deterministic gzip'd tar layer of a few seeded files."""
    rng = random.Random(seed)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(files):
            content = rng.randbytes(file_size)
            info = tarfile.TarInfo(f"layer-{seed}/file-{i}.bin")
            info.size, info.mtime, info.mode = len(content), 0, 0o644
            tar.addfile(info, io.BytesIO(content))
    data = gzip.compress(buf.getvalue(), mtime=0)
    return Blob.of(DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP, data)


def config_blob(platform: dict[str, str], layers: Sequence[Blob], seed: str, docker: bool = False) -> Blob:
    """Return an image config naming the platform and the layers' (stand-in) diff ids."""
    config = {
        "created": "2026-01-01T00:00:00Z",
        **platform,
        "config": {"Env": [f"SEED={seed}"], "Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"standins {seed}"}],
    }
    return Blob.of(DOCKER_CONFIG if docker else OCI_CONFIG, json.dumps(config, sort_keys=True).encode())


def image_manifest(config: Blob, layers: Sequence[Blob], *, docker: bool = False,
                   platform: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
                   subject: Manifest | None = None, artifact_type: str | None = None) -> Manifest:
    """Return an image manifest (OCI, or Docker schema 2) over a config and layers."""
    body: dict = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST}
    if artifact_type:
        body["artifactType"] = artifact_type
    body["config"] = config.descriptor()
    body["layers"] = [layer.descriptor() for layer in layers]
    if subject is not None:
        body["subject"] = {k: v for k, v in subject.descriptor().items() if k != "platform"}
    if annotations:
        body["annotations"] = annotations
    return Manifest(body["mediaType"], _canonical(body), (config, *layers), (), platform)


def index(children: Sequence[Manifest], *, docker: bool = False,
          annotations: dict[str, str] | None = None) -> Manifest:
    """Return an OCI index (or Docker manifest list) over child manifests."""
    body: dict = {"schemaVersion": 2, "mediaType": DOCKER_LIST if docker else OCI_INDEX,
                  "manifests": [child.descriptor() for child in children]}
    if annotations:
        body["annotations"] = annotations
    return Manifest(body["mediaType"], _canonical(body), (), tuple(children))


def single_image(seed: str = "single", layers: int = 2, *, docker: bool = False,
                 platform: dict[str, str] | None = None) -> Manifest:
    """Return a single-platform image with a few small layers."""
    platform = platform or dict(DEFAULT_PLATFORMS[0])
    blobs = [tar_gz_layer(f"{seed}/layer{i}", docker=docker) for i in range(layers)]
    return image_manifest(config_blob(platform, blobs, seed, docker), blobs, docker=docker, platform=platform)


def multi_platform_index(seed: str = "multi", platforms: Sequence[dict[str, str]] = DEFAULT_PLATFORMS, *,
                         docker: bool = False, shared_layers: int = 2) -> Manifest:
    """Return an index whose platform images share `shared_layers` base layers plus one layer each."""
    shared = [tar_gz_layer(f"{seed}/base{i}", docker=docker) for i in range(shared_layers)]
    children = []
    for platform in platforms:
        name = "-".join(platform.values())
        layers = [*shared, tar_gz_layer(f"{seed}/{name}", docker=docker)]
        config = config_blob(dict(platform), layers, f"{seed}/{name}", docker)
        children.append(image_manifest(config, layers, docker=docker, platform=dict(platform)))
    return index(children, docker=docker)


def docker_manifest_list(seed: str = "dockerlist", platforms: Sequence[dict[str, str]] = DEFAULT_PLATFORMS) -> Manifest:
    """Return a Docker manifest list over Docker schema 2 images with shared layers."""
    return multi_platform_index(seed, platforms, docker=True)


def large_image(size: int, seed: str = "large") -> Manifest:
    """Return a single-platform image with one generated layer of `size` bytes (streamed, never in memory)."""
    layer = Blob.generated(OCI_LAYER_TAR, seed, size)
    platform = dict(DEFAULT_PLATFORMS[0])
    return image_manifest(config_blob(platform, [layer], seed), [layer], platform=platform)


def signature_tag(digest: str) -> str:
    """Return cosign's signature tag for a digest: `sha256-<hex>.sig`."""
    algorithm, _, hex_ = digest.partition(":")
    return f"{algorithm}-{hex_}.sig"


def cosign_signature(signed: Manifest | str, seed: str = "sig") -> Manifest:
    """Return a cosign-style signature manifest for a digest (push it under `signature_tag(digest)`)."""
    digest = signed if isinstance(signed, str) else signed.digest
    payload = json.dumps({"critical": {"identity": {"docker-reference": "standins"},
                                       "image": {"docker-manifest-digest": digest},
                                       "type": "cosign container image signature"}, "optional": None}).encode()
    fake_signature = random.Random(seed + digest).randbytes(64).hex()
    layer = Blob.of(COSIGN_LAYER, payload, {COSIGN_SIGNATURE_ANNOTATION: fake_signature})
    config = Blob.of(OCI_CONFIG, json.dumps({"architecture": "", "os": "", "config": {},
                                             "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}).encode())
    return image_manifest(config, [layer])


def artifact(subject: Manifest, seed: str = "sbom",
             artifact_type: str = "application/vnd.example.sbom.v1+json") -> Manifest:
    """Return an OCI 1.1 artifact manifest (empty config, `artifactType`) referring to `subject`."""
    empty = Blob.of(OCI_EMPTY, b"{}")
    content = json.dumps({"sbom": seed, "subject": subject.digest}).encode()
    return image_manifest(empty, [Blob.of(artifact_type, content)], subject=subject, artifact_type=artifact_type,
                          annotations={"org.opencontainers.image.created": "2026-01-01T00:00:00Z"})


def release_series(seed: str, releases: int, platforms: Sequence[dict[str, str]] = DEFAULT_PLATFORMS, *,
                   base_size: int, shared_size: int, own_size: int) -> list[Manifest]:
    """Return multi-platform indexes of successive releases: a per-platform base layer shared by every
    release, a layer shared by all platforms of one release, and one layer of each platform's own."""
    bases = {i: Blob.generated(OCI_LAYER_TAR, f"{seed}/base/{i}", base_size) for i in range(len(platforms))}
    series = []
    for r in range(releases):
        shared = Blob.generated(OCI_LAYER_TAR, f"{seed}/r{r}/shared", shared_size)
        children = []
        for i, platform in enumerate(platforms):
            layers = [bases[i], shared, Blob.generated(OCI_LAYER_TAR, f"{seed}/r{r}/p{i}", own_size)]
            config = config_blob(dict(platform), layers, f"{seed}/r{r}/p{i}")
            children.append(image_manifest(config, layers, platform=dict(platform)))
        series.append(index(children))
    return series

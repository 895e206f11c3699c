"""skopeo as the independent oracle: read digests and tags back, copy, and push hand-built OCI layouts."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from standins.images import Manifest
from standins.tokens import Credential

SKOPEO_TIMEOUT = 300.0


class SkopeoError(RuntimeError):
    """skopeo exited non-zero; the message carries its stderr."""


def skopeo_binary() -> str | None:
    """Return the path of skopeo, or None when it is not installed."""
    return shutil.which("skopeo")


def _creds(flag: str, credential: Credential | None) -> list[str]:
    # skopeo's --creds/--src-creds/--dest-creds take USER:PASSWORD; the no-creds variants skip auth files
    if credential is None:
        return [flag.replace("creds", "no-creds")]
    return [f"{flag}={credential.username}:{credential.password}"]


def run(args: Sequence[str], timeout: float = SKOPEO_TIMEOUT) -> bytes:
    """Run skopeo with the arguments and return its stdout, raising SkopeoError on failure."""
    binary = skopeo_binary()
    if binary is None:
        raise SkopeoError("skopeo is not installed (apt-get install skopeo)")
    done = subprocess.run([binary, *args], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        shown = [a if "creds=" not in a else a.split("=", 1)[0] + "=<hidden>" for a in args]
        raise SkopeoError(f"skopeo {' '.join(shown)} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    return done.stdout


def inspect_raw(ref: str, credential: Credential | None = None) -> bytes:
    """Return the exact manifest bytes of `HOST/REPO:TAG` or `HOST/REPO@DIGEST` over plain HTTP."""
    return run(["inspect", "--raw", "--tls-verify=false", *_creds("--creds", credential), f"docker://{ref}"])


def digest(ref: str, credential: Credential | None = None) -> str:
    """Return `sha256:<hex>` of the manifest bytes skopeo reads for a reference."""
    return "sha256:" + hashlib.sha256(inspect_raw(ref, credential)).hexdigest()


def repository_of(ref: str) -> str:
    """Return `HOST[:PORT]/REPO` of `HOST[:PORT]/REPO[:TAG][@DIGEST]` (a `:` after the last `/` starts a tag)."""
    name = ref.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def manifest_tree(ref: str, credential: Credential | None = None) -> list[str]:
    """Return the digest of a reference followed by each child manifest's digest as read back by digest."""
    raw = inspect_raw(ref, credential)
    top = "sha256:" + hashlib.sha256(raw).hexdigest()
    repo = repository_of(ref)
    children = [m["digest"] for m in json.loads(raw).get("manifests", [])]
    return [top, *(digest(f"{repo}@{child}", credential) for child in children)]


def list_tags(repository_ref: str, credential: Credential | None = None) -> list[str]:
    """Return the tags of `HOST/REPO`."""
    out = run(["list-tags", "--tls-verify=false", *_creds("--creds", credential), f"docker://{repository_ref}"])
    return list(json.loads(out).get("Tags") or [])


def copy(source: str, dest: str, source_credential: Credential | None = None,
         dest_credential: Credential | None = None, *, all_platforms: bool = True) -> None:
    """`skopeo copy --all --preserve-digests` between transports (`docker://...`, `oci:DIR:TAG`)."""
    args = ["copy", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false", "--quiet",
            *_creds("--src-creds", source_credential), *_creds("--dest-creds", dest_credential), source, dest]
    if all_platforms:
        args.insert(1, "--all")
    run(args)


def write_oci_layout(manifest: Manifest, directory: Path, tag: str) -> Path:
    """Write a manifest tree as an OCI image layout whose index.json names it `tag`; return the directory."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    for blob in manifest.all_blobs().values():
        path = blobs / blob.digest.split(":", 1)[1]
        if not path.exists():
            with open(path, "wb") as out:
                for chunk in blob.chunks():
                    out.write(chunk)
    for item in manifest.walk():
        (blobs / item.digest.split(":", 1)[1]).write_bytes(item.raw)
    index_path = directory / "index.json"
    entries = json.loads(index_path.read_text())["manifests"] if index_path.exists() else []
    entry = {"mediaType": manifest.media_type, "digest": manifest.digest, "size": len(manifest.raw),
             "annotations": {"org.opencontainers.image.ref.name": tag}}
    entries = [e for e in entries if e.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
    index_path.write_text(json.dumps({"schemaVersion": 2, "manifests": [*entries, entry]}, indent=2))
    return directory


def write_dir_layout(manifest: Manifest, directory: Path) -> Path:
    """Write a manifest tree in skopeo's `dir:` layout, which takes any media type; return the directory."""
    # containers/image directory transport: manifest.json, <child hex>.manifest.json, blobs by hex
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "version").write_text("Directory Transport Version: 1.1\n")
    for blob in manifest.all_blobs().values():
        with open(directory / blob.digest.split(":", 1)[1], "wb") as out:
            for chunk in blob.chunks():
                out.write(chunk)
    for child in manifest.children:
        (directory / (child.digest.split(":", 1)[1] + ".manifest.json")).write_bytes(child.raw)
    (directory / "manifest.json").write_bytes(manifest.raw)
    return directory


def push_layout(manifest: Manifest, directory: Path, dest_ref: str, credential: Credential | None = None) -> None:
    """Push a tree with skopeo to `HOST/REPO:TAG`, digests preserved: via an OCI layout, or `dir:` for Docker types."""
    tag = dest_ref.rsplit(":", 1)[1]
    if manifest.media_type.startswith("application/vnd.oci."):
        source = f"oci:{write_oci_layout(manifest, directory, tag)}:{tag}"
    else:
        source = f"dir:{write_dir_layout(manifest, directory)}"
    copy(source, f"docker://{dest_ref}", None, credential)

"""Build the code bundle the CodeBuild copy project runs: `chalicelib/`, `buildspec/` and `vendor/`.

`vendor/` holds the sync's runtime dependencies, installed with `pip install --target` at the exact
versions installed here (the versions the tests ran with), so a build downloads nothing at run time.
The buildspec puts it first on the path: `PYTHONPATH=$CODEBUILD_SRC_DIR/vendor:$CODEBUILD_SRC_DIR`.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

# What `ghcr2ecr sync` and `revoke-token` import beyond the standard library. boto3 is pinned here too:
# the Lambda-compute images ship the AWS CLI but not necessarily a boto3 importable by their Python.
SYNC_DISTRIBUTIONS = ("httpx", "boto3")
# The CodeBuild image's Python (infra/support-stack.yml); wheels are chosen for it, not for this machine.
TARGET_PYTHON = "3.12"
TARGET_PLATFORM = "manylinux2014_x86_64"
# Directories copied into the bundle, and what is left out of them.
SOURCE_DIRS = ("chalicelib", "buildspec")
EXCLUDED_DIRS = frozenset({"__pycache__", "ops"})  # ops/ is operator tooling, not needed by a build
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip timestamps, so the same inputs give the same bytes and key

Installer = Callable[[Sequence[str], Path], None]


class BundleError(RuntimeError):
    """The code bundle could not be built."""


@dataclass(frozen=True)
class Bundle:
    """A built code bundle: the zip's bytes and its content-hashed S3 key."""

    data: bytes
    sha256: str
    pins: tuple[str, ...]

    @property
    def key(self) -> str:
        """Return the S3 key: the same content always lands on the same key, so re-uploads are no-ops."""
        return f"bundles/{self.sha256[:32]}.zip"


def _normalize(name: str) -> str:
    """Normalize a distribution name (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirements(roots: Iterable[str] = SYNC_DISTRIBUTIONS) -> tuple[str, ...]:
    """Return `name==version` for `roots` and everything they require, as installed in this environment."""
    seen: dict[str, str] = {}
    pending = [_normalize(root) for root in roots]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as exc:
            raise BundleError(f"{name} is not installed here; run `pip install -e .` before deploying") from exc
        seen[name] = dist.version
        for requirement in dist.requires or []:
            spec, _, marker = requirement.partition(";")
            if "extra" in marker:
                continue  # optional features of a dependency are not needed
            if marker.strip() and not _marker_holds(marker):
                continue
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
            if match:
                pending.append(_normalize(match.group(1)))
    return tuple(f"{name}=={version}" for name, version in sorted(seen.items()))


def _marker_holds(marker: str) -> bool:
    """Evaluate an environment marker for the build's Python on Linux (unknown markers count as true)."""
    try:
        from packaging.markers import Marker  # pip and setuptools vendor it; the real one may be absent
    except ImportError:
        return True
    env = {"python_version": TARGET_PYTHON, "python_full_version": TARGET_PYTHON + ".0",
           "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
           "platform_machine": "x86_64", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "extra": ""}
    return bool(Marker(marker.strip()).evaluate(env))


def pip_install(pins: Sequence[str], target: Path) -> None:
    """Install exactly `pins` (no resolution) into `target` as wheels for the CodeBuild image."""
    command = pip_command(pins, target)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BundleError(f"pip could not install the sync's dependencies: {result.stderr.strip()[-2000:]}")


def pip_command(pins: Sequence[str], target: Path) -> list[str]:
    """Return the pip command line `pip_install` runs."""
    return [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-compile", "--only-binary=:all:",
        "--platform", TARGET_PLATFORM, "--python-version", TARGET_PYTHON, "--implementation", "cp",
        "--target", str(target), *pins,
    ]


def vendor_dir(project_dir: Path, pins: Sequence[str], install: Installer = pip_install) -> Path:
    """Return a directory holding `pins` installed, reusing `build/bundle/` from an earlier run."""
    digest = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:16]
    target = project_dir / "build" / "bundle" / f"vendor-{digest}"
    if (target / ".complete").is_file():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    install(pins, target)
    (target / ".complete").write_text("\n".join(pins) + "\n")
    return target


def _files(root: Path) -> list[Path]:
    """Return the files under `root` that belong in the bundle, sorted."""
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part in EXCLUDED_DIRS for part in relative.parts[:-1]) or not path.is_file():
            continue
        if path.suffix in EXCLUDED_SUFFIXES or path.name == ".complete":
            continue
        found.append(path)
    return found


def build_bundle(project_dir: Path, install: Installer = pip_install, pins: Sequence[str] | None = None) -> Bundle:
    """Zip the project's sync code, the buildspec and the vendored dependencies, reproducibly."""
    project_dir = Path(project_dir)
    pins = tuple(pins if pins is not None else pinned_requirements())
    if not (project_dir / "buildspec" / "buildspec.yml").is_file():
        raise BundleError(f"{project_dir / 'buildspec' / 'buildspec.yml'} is missing: the build has nothing to run")
    vendor = vendor_dir(project_dir, pins, install)
    entries: list[tuple[str, Path]] = []
    for name in SOURCE_DIRS:
        entries += [(path.relative_to(project_dir).as_posix(), path) for path in _files(project_dir / name)]
    entries += [("vendor/" + path.relative_to(vendor).as_posix(), path) for path in _files(vendor)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for arcname, path in sorted(entries):
            info = zipfile.ZipInfo(arcname, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
        info = zipfile.ZipInfo("vendor/PINNED.txt", date_time=FIXED_TIME)
        info.external_attr = 0o644 << 16
        archive.writestr(info, "\n".join(pins) + "\n")
    data = buffer.getvalue()
    return Bundle(data=data, sha256=hashlib.sha256(data).hexdigest(), pins=pins)

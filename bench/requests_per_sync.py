"""Requests per sync on the metadata path (the build's path), for repositories of 10, 300 and 3,000 tags.

Run by hand: `.venv/bin/python bench/requests_per_sync.py [--sizes 10,300,3000]`.
Each size is a repository of tiny single-platform releases, three tags each (`rN`, `rN-a`, `rN-b`), all
mirrored first with --all-tags. Then a new release is pushed with its own tag and `latest` + `stable`
moved onto it, and the build's command runs for its event: `--digest NEW --tag latest --aliases`, then the
same event again; finally an --all-tags re-run with nothing missing. Requests are counted by proxies in
front of the GHCR stand-in (with its token server) and the destination registry.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from chalicelib.sync import engine as sync
from standins import images
from standins.faults import FaultProxy
from standins.ghcr_ecr import start_ecr, start_ghcr
from standins.push import RegistryClient


def release(n: int, layer: images.Blob) -> images.Manifest:
    """Return a tiny image of its own (one shared layer, a config naming the release)."""
    platform = dict(images.DEFAULT_PLATFORMS[0])
    return images.image_manifest(images.config_blob(platform, [layer], f"release-{n}"), [layer], platform=platform)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print one line per size and scenario."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,300,3000", help="comma list of tag counts")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    root = Path(__file__).resolve().parent.parent / ".bench"
    root.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="requests-", dir=root))
    layer = images.tar_gz_layer("requests-bench", files=1, file_size=64)
    rows: list[tuple[int, str, int, int, bool, float]] = []
    try:
        with start_ghcr(workdir) as ghcr, start_ecr(workdir) as ecr, \
                FaultProxy(ghcr.url, ghcr.tokens.url) as source, FaultProxy(ecr.url) as dest:
            env = {"GHCR2ECR_SOURCE_FALLBACK_TOKEN": ghcr.fallback.password,
                   "GHCR2ECR_SOURCE_USERNAME": ghcr.fallback.username,
                   "GHCR2ECR_DEST_USERNAME": ecr.credential.username,
                   "GHCR2ECR_DEST_PASSWORD": ecr.credential.password}

            def measure(size: int, title: str, **kwargs: object) -> None:
                source.reset_traffic()
                dest.reset_traffic()
                started = time.monotonic()
                request = sync.SyncRequest.build(f"http://{source.host}/bench/t{size}",
                                                 f"http://{dest.host}/bench/t{size}", **kwargs)  # type: ignore[arg-type]
                report = sync.run(request, env=env)
                rows.append((size, title, source.traffic.total, dest.traffic.total, report.ok,
                             time.monotonic() - started))

            for size in sizes:
                with RegistryClient(ghcr.url, f"bench/t{size}", ghcr.pusher) as client:
                    client.put_blob(layer)
                    for n in range(size // 3):
                        image = release(n, layer)
                        client.put_blob(image.blobs[0])
                        for tag in (f"r{n}", f"r{n}-a", f"r{n}-b") if n else ("r0", "latest", "stable"):
                            client.put_manifest(image, tag)
                    measure(size, "--all-tags, destination empty", all_tags=True)
                    new = release(size, layer)
                    client.put_blob(new.blobs[0])
                    for tag in ("r-new", "latest", "stable"):
                        client.put_manifest(new, tag)
                measure(size, "event: --digest NEW --tag latest --aliases", digest=new.digest, tags=["latest"],
                        aliases=True)
                measure(size, "the same event again", digest=new.digest, tags=["latest"], aliases=True)
                measure(size, "--all-tags, nothing missing", all_tags=True)
                print(f"done: {size} tags", file=sys.stderr)
        print(f"\n{'tags':>6}  {'scenario':<44}{'source req':>11}{'per tag':>9}{'dest req':>10}{'ok':>4}{'s':>7}")
        for size, title, src, dst, ok, seconds in rows:
            print(f"{size:>6}  {title:<44}{src:>11,}{src / size:>9.2f}{dst:>10,}{'y' if ok else 'N':>4}{seconds:>7.2f}")
        return 0 if all(row[4] for row in rows) else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

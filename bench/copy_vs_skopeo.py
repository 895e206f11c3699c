"""Benchmark `ghcr2ecr sync` against skopeo on the same local registries, each behind a counting proxy.

Run by hand: `.venv/bin/python bench/copy_vs_skopeo.py [--quick] [--large-size 1G] [--tags 200]
[--latency-ms 10] [--repeat 3]`.
Scenarios: (a) cold copy of a multi-platform release series with shared layers, (b) re-run with nothing
missing over many tags, (c) one more tag on a digest already present, (d) one large layer, (e) the next
release onto a destination holding the earlier ones (the event's command), (f) a build-sized job: `run-job`
over 50 packages that each got a new release, next to one skopeo process per package.
`--latency-ms` delays every request to the source (as a distant GHCR does); `--repeat` runs (a), (b), (c),
(e) and (f) that many times and reports the run of median wall time for each tool; `--only ac` runs some of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from chalicelib.build.job import BuildJob, Target
from chalicelib.jobs import ALL_TAGS
from standins import images, skopeo
from standins.faults import FaultProxy
from standins.ghcr_ecr import EcrStandin, GhcrStandin, start_ecr, start_ghcr
from standins.push import RegistryClient, push
from standins.tokens import PULL, Credential, Principal

RUN_TIMEOUT = 1800.0
F_BASE = 512 << 10  # (f)'s base layers: small, yet their HEADs' Content-Length is over 64 KiB
# Runs the tool as its only child and reports its wall time, CPU time and peak RSS (rusage of reaped children).
WRAPPER = """import json, resource, subprocess, sys, time
t = time.monotonic()
rc = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
seconds = time.monotonic() - t
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
json.dump({"rc": rc.returncode, "seconds": seconds, "maxrss_kb": usage.ru_maxrss,
           "cpu": usage.ru_utime + usage.ru_stime, "stderr": rc.stderr.decode(errors="replace")[-2000:]},
          open(sys.argv[1], "w"))
"""


@dataclass
class Run:
    """One tool's measured run of one scenario."""

    seconds: float
    source_blob_bytes: int
    source_requests: int
    dest_requests: int
    peak_rss_mb: float
    ok: bool
    error: str = ""
    cpu_seconds: float = 0.0


Row = tuple[str, Run, Run, int, bool | None]  # title, ghcr2ecr, skopeo, unique missing bytes, digests same


@dataclass
class Bench:
    """The registries, proxies and credentials shared by every scenario."""

    workdir: Path
    ghcr: GhcrStandin
    ecr: EcrStandin
    source: FaultProxy
    dest: FaultProxy
    reader: Credential

    def measure(self, command: Sequence[str], env: dict[str, str] | None = None) -> Run:
        """Run a command in a fresh wrapper process and collect time, traffic and peak RSS."""
        self.source.reset_traffic()
        self.dest.reset_traffic()
        os.sync()  # write back what earlier steps wrote (pushes, copies), so it does not compete with this run
        out = self.workdir / "run.json"
        subprocess.run([sys.executable, "-c", WRAPPER, str(out), *command], env=env or dict(os.environ),
                       timeout=RUN_TIMEOUT, check=True)
        result = json.loads(out.read_text())
        src, dst = self.source.reset_traffic(), self.dest.reset_traffic()
        last_line = (result["stderr"].strip().splitlines() or [f"exit {result['rc']}"])[-1]
        return Run(result["seconds"], src.blob_bytes, src.total, dst.total, result["maxrss_kb"] / 1024,
                   result["rc"] == 0, "" if result["rc"] == 0 else last_line, result["cpu"])

    def ghcr2ecr_env(self) -> dict[str, str]:
        """Return the environment `ghcr2ecr sync` and `run-job` read their credentials from."""
        env = dict(os.environ, GHCR2ECR_SOURCE_TOKEN=self.reader.password,
                   GHCR2ECR_SOURCE_USERNAME=self.reader.username, GHCR2ECR_DEST_USERNAME=self.ecr.credential.username,
                   GHCR2ECR_DEST_PASSWORD=self.ecr.credential.password)
        env.pop("GHCR2ECR_SOURCE_FALLBACK_TOKEN", None)
        return env

    def ghcr2ecr(self, repository: str, dest: str, *flags: str) -> Run:
        """Measure `ghcr2ecr sync` from the source proxy to the destination proxy."""
        return self.measure([ghcr2ecr_binary(), "sync", f"http://{self.source.host}/{repository}",
                             f"http://{self.dest.host}/{dest}", "--quiet", *flags], self.ghcr2ecr_env())

    def skopeo(self, *args: str) -> Run:
        """Measure a skopeo command with source and destination credentials, plain HTTP."""
        creds = [f"--src-creds={self.reader.username}:{self.reader.password}",
                 f"--dest-creds={self.ecr.credential.username}:{self.ecr.credential.password}",
                 "--src-tls-verify=false", "--dest-tls-verify=false"]
        return self.measure([skopeo.skopeo_binary() or "skopeo", args[0], *creds, *args[1:]])

    def same(self, source_ref: str, dest_ref: str) -> bool:
        """Return whether skopeo reads the same digests (index and children) on both sides."""
        try:
            return (skopeo.manifest_tree(f"{self.ghcr.host}/{source_ref}", self.reader)
                    == skopeo.manifest_tree(f"{self.ecr.host}/{dest_ref}", self.ecr.credential))
        except skopeo.SkopeoError:
            return False


def ghcr2ecr_binary() -> str:
    """Return the venv's `ghcr2ecr` console script."""
    return shutil.which("ghcr2ecr") or str(Path(sys.executable).parent / "ghcr2ecr")


def parse_size(text: str) -> int:
    """Parse a byte size such as 1G, 64M, 512K or 1048576 (binary units)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1:] in units else int(text)


def push_series(bench: Bench, repository: str, series: list[images.Manifest], prefix: str) -> list[str]:
    """Push a release series directly to the source registry, one tag per release; return the tags."""
    tags = [f"{prefix}{i:03d}" for i in range(len(series))]
    for tag, manifest in zip(tags, series):
        push(manifest, bench.ghcr.url, repository, [tag], bench.ghcr.pusher)
    return tags


def scenario_a(bench: Bench, releases: int, base: int, repeat: int = 1) -> Row:
    """Cold copy of a release series with layers shared across releases and platforms.

    Each repetition pushes a series of its own (new blobs): skopeo remembers where it has seen a blob
    (its blob-info cache) and would mount a repeated series instead of copying it.
    """
    g_runs, s_runs, ok, unique, count = [], [], True, 0, 0
    for n in range(repeat):
        suffix = "" if n == 0 else str(n)  # (c) adds tags to the first series
        series = images.release_series(f"bench-a{suffix}", releases, base_size=base, shared_size=base // 4,
                                       own_size=base // 8)
        tags = push_series(bench, f"bench/set{suffix}", series, "r")
        blobs = {d: b for m in series for d, b in m.all_blobs().items()}
        unique, count = sum(b.size for b in blobs.values()), len(tags)
        g_runs.append(bench.ghcr2ecr(f"bench/set{suffix}", f"g2e/set{suffix}", "--all-tags"))
        s_runs.append(bench.skopeo("sync", "--src", "docker", "--dest", "docker", "--all", "--preserve-digests",
                                   f"{bench.source.host}/bench/set{suffix}", f"{bench.dest.host}/skopeo{suffix}"))
        ok = ok and all(bench.same(f"bench/set{suffix}:{t}", f"g2e/set{suffix}:{t}")
                        and bench.same(f"bench/set{suffix}:{t}", f"skopeo{suffix}/set{suffix}:{t}")
                        for t in tags[:2] + tags[-1:])
    title = f"(a) cold copy: {releases} releases x 3 platforms, {count} tags"
    return title, median_run(g_runs), median_run(s_runs), unique, ok


def median_run(runs: list[Run]) -> Run:
    """Return the run of median wall time (a failed run wins: failures must show); print them all to stderr."""
    if len(runs) > 1:
        shown = "  ".join(f"{r.seconds:.2f} ({r.source_requests}/{r.dest_requests})" for r in runs)
        print(f"  runs, s (requests src/dst): {shown}", file=sys.stderr)
    failed = [r for r in runs if not r.ok]
    return failed[0] if failed else sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def scenario_b(bench: Bench, count: int, repeat: int = 1) -> Row:
    """Re-run over many tags when the destination already has everything."""
    series = images.release_series("bench-b", count, base_size=4096, shared_size=1024, own_size=512)
    tags = push_series(bench, "bench/many", series, "t")
    warm = [bench.ghcr2ecr("bench/many", "g2e/many", "--all-tags"),  # populate both destinations, untimed
            bench.skopeo("sync", "--src", "docker", "--dest", "docker", "--all", "--preserve-digests",
                         f"{bench.source.host}/bench/many", f"{bench.dest.host}/skopeo")]
    for name, run in zip(("ghcr2ecr", "skopeo"), warm):
        if not run.ok:
            print(f"warning: (b) warm-up {name} failed: {run.error}", file=sys.stderr)
    g = median_run([bench.ghcr2ecr("bench/many", "g2e/many", "--all-tags") for _ in range(repeat)])
    s = median_run([bench.skopeo("sync", "--src", "docker", "--dest", "docker", "--all", "--preserve-digests",
                                 f"{bench.source.host}/bench/many", f"{bench.dest.host}/skopeo")
                    for _ in range(repeat)])
    ok = bench.same(f"bench/many:{tags[-1]}", f"g2e/many:{tags[-1]}") and \
        bench.same(f"bench/many:{tags[-1]}", f"skopeo/many:{tags[-1]}")
    return f"(b) no-op re-run over {count} tags ({count * 4} manifests)", g, s, 0, ok


def scenario_c(bench: Bench, repeat: int = 1) -> Row:
    """One more tag on a digest both destinations already hold (a new tag each repetition)."""
    g_runs, s_runs, ok = [], [], True
    for n in range(repeat):
        tag = f"extra{n}"
        with RegistryClient(bench.ghcr.url, "bench/set", bench.ghcr.pusher) as client:
            media_type, raw = client.get_manifest("r000")
            client.put_manifest(images.Manifest(media_type, raw), tag)
        g_runs.append(bench.ghcr2ecr("bench/set", "g2e/set", "--tag", tag))
        s_runs.append(bench.skopeo("copy", "--all", "--preserve-digests",
                                   f"docker://{bench.source.host}/bench/set:{tag}",
                                   f"docker://{bench.dest.host}/skopeo/set:{tag}"))
        ok = ok and bench.same(f"bench/set:{tag}", f"g2e/set:{tag}") and \
            bench.same(f"bench/set:{tag}", f"skopeo/set:{tag}")
    return "(c) one more tag on a digest already present", median_run(g_runs), median_run(s_runs), 0, ok


def scenario_d(bench: Bench, size: int) -> Row:
    """A single-platform image with one large layer."""
    image = images.large_image(size, "bench-d")
    push(image, bench.ghcr.url, "bench/large", ["v1"], bench.ghcr.pusher)
    g = bench.ghcr2ecr("bench/large", "g2e/large", "--tag", "v1")
    s = bench.skopeo("copy", "--all", "--preserve-digests", f"docker://{bench.source.host}/bench/large:v1",
                     f"docker://{bench.dest.host}/skopeo/large:v1")
    ok = bench.same("bench/large:v1", "g2e/large:v1") and bench.same("bench/large:v1", "skopeo/large:v1")
    unique = sum(b.size for b in image.all_blobs().values())
    return f"(d) one layer of {size / (1 << 20):.0f} MiB", g, s, unique, ok


def new_bytes(release: images.Manifest, earlier: Sequence[images.Manifest]) -> int:
    """Return the bytes of the release's blobs that no earlier release has."""
    held = {d for m in earlier for d in m.all_blobs()}
    return sum(b.size for d, b in release.all_blobs().items() if d not in held)


def scenario_e(bench: Bench, held: int, base: int, repeat: int = 1) -> Row:
    """Release N+1, sharing its base layers with releases 1..N, onto destinations that hold 1..N.

    ghcr2ecr runs the build's command for the release's event; skopeo copies the release with every platform.
    Each repetition pushes the next release, onto destinations that hold every earlier one.
    """
    series = images.release_series("bench-e", held + repeat, base_size=base, shared_size=base // 4,
                                   own_size=base // 8)
    tags = [f"r{i:03d}" for i in range(len(series))]
    for tag, manifest in zip(tags[:held], series[:held]):
        push(manifest, bench.ghcr.url, "bench/inc", [tag], bench.ghcr.pusher)
    warm = [bench.ghcr2ecr("bench/inc", "g2e/inc", "--all-tags"),  # releases 1..N in both destinations, untimed
            bench.skopeo("sync", "--src", "docker", "--dest", "docker", "--all", "--preserve-digests",
                         f"{bench.source.host}/bench/inc", f"{bench.dest.host}/skopeo")]
    for name, run in zip(("ghcr2ecr", "skopeo"), warm):
        if not run.ok:
            print(f"warning: (e) warm-up {name} failed: {run.error}", file=sys.stderr)
    g_runs, s_runs, ok, unique = [], [], True, 0
    for n in range(held, held + repeat):
        release, tag = series[n], tags[n]
        push(release, bench.ghcr.url, "bench/inc", [tag], bench.ghcr.pusher)
        unique = new_bytes(release, series[:n])
        g_runs.append(bench.ghcr2ecr("bench/inc", "g2e/inc", "--digest", release.digest, "--tag", tag, "--aliases"))
        s_runs.append(bench.skopeo("copy", "--all", "--preserve-digests", f"docker://{bench.source.host}/bench/inc:{tag}",
                                   f"docker://{bench.dest.host}/skopeo/inc:{tag}"))
        ok = ok and bench.same(f"bench/inc:{tag}", f"g2e/inc:{tag}") and bench.same(f"bench/inc:{tag}",
                                                                                     f"skopeo/inc:{tag}")
    title = (f"(e) incremental: release N+1 onto releases 1..N, N = {held}{held_range(held, repeat)} (3 platforms, "
             f"{base / (1 << 20):g} MiB base layers shared)")
    return title, median_run(g_runs), median_run(s_runs), unique, ok


def scenario_f(bench: Bench, packages: int, held: int, base: int, repeat: int = 1) -> list[Row]:
    """A build-sized job: `ghcr2ecr run-job` over packages that each got a new release since the last build.

    A job of many packages selects every tag (a reconcile or backfill; an event's job names one package), so
    ghcr2ecr finds the new release itself. Its peers run one skopeo process per package, as a script would:
    `skopeo sync` of the repository (the same selection), and `skopeo copy` of the new tag (told which one).
    The copy peer reaches the destination registry through a proxy of its own: skopeo records where it saw
    each blob (per registry host) and would otherwise mount the new blobs from the sync peer's repositories.
    """
    names = [f"bench/p{i:03d}" for i in range(packages)]
    series = {name: images.release_series(f"bench-f/{name}", held + repeat, base_size=base, shared_size=base // 4,
                                          own_size=base // 8) for name in names}
    tags = [f"r{i:03d}" for i in range(held + repeat)]
    report = bench.workdir / "run-job.json"
    job = BuildJob("reconcile", "bench-f", 1, "bench", ALL_TAGS, tuple(
        Target(name, f"http://{bench.source.host}/{name}", f"http://{bench.dest.host}/g2e/{name.split('/')[1]}",
               1, None, None, True) for name in names))
    run_job = [ghcr2ecr_binary(), "run-job", "--quiet", "--report", str(report)]
    env = dict(bench.ghcr2ecr_env(), GHCR2ECR_JOB=job.to_json())
    with FaultProxy(bench.ecr.url) as other_dest:
        copier = replace(bench, dest=other_dest)

        def script(name: str, peer: Bench, command: str) -> list[str]:
            """Write a shell script running `command` once per package ({name}, {repo}); return its argv."""
            creds = (f"--src-creds={bench.reader.username}:{bench.reader.password} "
                     f"--dest-creds={bench.ecr.credential.username}:{bench.ecr.credential.password} "
                     "--src-tls-verify=false --dest-tls-verify=false")
            lines = [command.format(skopeo=skopeo.skopeo_binary() or "skopeo", creds=creds, src=bench.source.host,
                                    dst=peer.dest.host, name=name, repo=name.split("/")[1]) for name in names]
            path = bench.workdir / f"{name}.sh"
            path.write_text("set -e\n" + "\n".join(lines) + "\n")
            return ["sh", str(path)]

        sync = "{skopeo} sync {creds} --src docker --dest docker --all --preserve-digests {src}/{name} {dst}/"
        sync_all = script("skopeo-sync", bench, sync + "skopeo-sync")
        for n in range(held):
            push_packages(bench, {name: series[name][n] for name in names}, tags[n])
        # releases 1..N in the three destinations, untimed and at once
        warm = {"ghcr2ecr": (run_job, env), "skopeo sync": (sync_all, None),
                "skopeo copy": (script("skopeo-warm", copier, sync + "skopeo-copy"), None)}
        running = {name: subprocess.Popen(argv, env=penv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                   for name, (argv, penv) in warm.items()}
        for name, process in running.items():
            _, stderr = process.communicate(timeout=RUN_TIMEOUT)
            if process.returncode:
                print(f"warning: (f) warm-up {name} failed: {stderr.decode(errors='replace')[-500:]}", file=sys.stderr)
        g_runs, sync_runs, copy_runs, ok, unique = [], [], [], True, 0
        for n in range(held, held + repeat):
            push_packages(bench, {name: series[name][n] for name in names}, tags[n])
            unique = sum(new_bytes(series[name][n], series[name][:n]) for name in names)
            g_runs.append(bench.measure(run_job, env))
            ok = ok and run_job_synced(report, packages)
            sync_runs.append(bench.measure(sync_all))
            copy_runs.append(copier.measure(script(
                "skopeo-copy", copier, "{skopeo} copy {creds} --all --preserve-digests "
                f"docker://{{src}}/{{name}}:{tags[n]} docker://{{dst}}/skopeo-copy/{{repo}}:{tags[n]}")))
            for name in (names[0], names[-1]):
                repo = name.split("/")[1]
                ok = ok and all(bench.same(f"{name}:{tags[n]}", f"{dest}/{repo}:{tags[n]}")
                                for dest in ("g2e", "skopeo-sync", "skopeo-copy"))
    title = f"(f) build-sized: {packages} packages, each a new release onto {held}{held_range(held, repeat)} held"
    g = median_run(g_runs)
    return [(f"{title}; skopeo sync per repository", g, median_run(sync_runs), unique, ok),
            (f"{title}; skopeo copy of the new tag per repository", g, median_run(copy_runs), unique, ok)]


def held_range(held: int, repeat: int) -> str:
    """Return how many more releases later repetitions find held: each one adds the previous one's release."""
    return f"..{held + repeat - 1}" if repeat > 1 else ""


def push_packages(bench: Bench, releases: dict[str, images.Manifest], tag: str) -> None:
    """Push one release to each package's repository on the source registry, several at once."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: push(item[1], bench.ghcr.url, item[0], [tag], bench.ghcr.pusher),
                      releases.items()))


def run_job_synced(report: Path, packages: int) -> bool:
    """Return whether `run-job` synced every package; print its blob counters to stderr."""
    try:
        results = json.loads(report.read_text())["packages"]
    except (OSError, ValueError, KeyError):
        return False
    totals = {k: sum(((r.get("report") or {}).get("blobs") or {}).get(k, 0) for r in results)
              for k in ("copied", "skipped", "mounted")}
    moved = sum((r.get("report") or {}).get("bytes_moved", 0) for r in results)
    inside = sorted((r.get("report") or {}).get("duration_seconds", 0.0) for r in results)
    print(f"  run-job: {len(results)} packages, blobs {totals}, {moved:,} bytes moved; syncs took "
          f"{sum(inside):.2f} s in all, {inside[len(inside) // 2]:.3f} s the median one", file=sys.stderr)
    return len(results) == packages and all(r["status"] == "synced" for r in results)


def ratio(a: float, b: float) -> str:
    """Render a/b, or a dash when b is zero."""
    return f"{a / b:.2f}x" if b else ("=" if a == b else "-")


def scenario_startup(bench: Bench) -> Row:
    """Process start-up alone, for scale: Python importing the sync modules, and `skopeo --version`."""
    g = bench.measure([sys.executable, "-c", "import chalicelib.sync.cli"])
    s = bench.measure([skopeo.skopeo_binary() or "skopeo", "--version"])
    return "(0) start-up only: python -c 'import chalicelib.sync.cli' vs skopeo --version", g, s, 0, None


def print_table(rows: list[Row]) -> None:
    """Print one block per scenario: each metric for ghcr2ecr, skopeo and their ratio."""
    print(f"\n{'scenario / metric':<36}{'ghcr2ecr':>16}{'skopeo':>16}{'ratio':>9}")
    for title, g, s, expected, ok in rows:
        status = {None: "no copy", True: "digests identical", False: "DIGESTS DIFFER"}[ok]
        failed = "".join(f"; {name} FAILED: {run.error}"
                         for name, run in (("ghcr2ecr", g), ("skopeo", s)) if not run.ok)
        print(f"{title}  [{status}{failed}; unique missing blob bytes {expected:,}]")
        metrics = [("wall time (s)", g.seconds, s.seconds, "{:.2f}"),
                   ("CPU time, user + system (s)", g.cpu_seconds, s.cpu_seconds, "{:.2f}"),
                   ("blob bytes read from source", g.source_blob_bytes, s.source_blob_bytes, "{:,}"),
                   ("HTTP requests to source", g.source_requests, s.source_requests, "{:,}"),
                   ("HTTP requests to destination", g.dest_requests, s.dest_requests, "{:,}"),
                   ("peak RSS (MB)", g.peak_rss_mb, s.peak_rss_mb, "{:.1f}")]
        for name, a, b, fmt in metrics:
            print(f"  {name:<34}{fmt.format(a):>16}{fmt.format(b):>16}{ratio(a, b):>9}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run every scenario in one go and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few MiB, 40 tags)")
    parser.add_argument("--large-size", type=parse_size, help="size of scenario (d)'s layer (default 1G; quick 64M)")
    parser.add_argument("--tags", type=int, help="tags in scenario (b) (default 200; quick 40)")
    parser.add_argument("--releases", type=int, help="releases in scenario (a) (default 6; quick 3)")
    parser.add_argument("--held", type=int, help="releases the destination holds in (e) (default 3; quick 2)")
    parser.add_argument("--packages", type=int, help="packages of the job in scenario (f) (default 50; quick 20)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every source request")
    parser.add_argument("--repeat", type=int, default=1, help="runs of (a), (b), (c), (e) and (f); the median is shown")
    parser.add_argument("--only", default="0abcdef", help="the scenarios to run, e.g. 'ac' (default: 0abcdef, all)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    large = args.large_size or (64 << 20 if args.quick else 1 << 30)
    count = args.tags or (40 if args.quick else 200)
    releases = args.releases or (3 if args.quick else 6)
    base = 1 << 20 if args.quick else 32 << 20
    held = args.held or (2 if args.quick else 3)
    packages = args.packages or (20 if args.quick else 50)
    if not (skopeo.skopeo_binary() and shutil.which("docker-registry")):
        print("needs docker-registry and skopeo: apt-get install -y docker-registry skopeo", file=sys.stderr)
        return 2
    root = Path(__file__).resolve().parent.parent / ".bench"
    root.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=root))
    started = time.monotonic()
    try:
        with start_ghcr(workdir) as ghcr, start_ecr(workdir) as ecr, \
                FaultProxy(ghcr.url, ghcr.tokens.url) as source, FaultProxy(ecr.url) as dest:
            # one read credential, tried first, so neither tool spends requests on a credential chain
            reader = Credential("x-access-token", "bench-reader")
            ghcr.tokens.policy.principals.append(Principal(reader, {"*": PULL}))
            bench = Bench(workdir, ghcr, ecr, source, dest, reader)
            source.latency = args.latency_ms / 1000
            rows: list[Row] = []
            steps: dict[str, Callable[[], list[Row]]] = {
                "0": lambda: [scenario_startup(bench)], "a": lambda: [scenario_a(bench, releases, base, args.repeat)],
                "b": lambda: [scenario_b(bench, count, args.repeat)], "c": lambda: [scenario_c(bench, args.repeat)],
                "d": lambda: [scenario_d(bench, large)], "e": lambda: [scenario_e(bench, held, base, args.repeat)],
                "f": lambda: scenario_f(bench, packages, 1, F_BASE, args.repeat)}
            if "c" in args.only and "a" not in args.only:  # (c) tags a digest of (a)'s series
                args.only = "a" + args.only
            for key in "0abcdef":
                if key not in args.only:
                    continue
                rows += steps[key]()
                print(f"done: {rows[-1][0]} ({time.monotonic() - started:.0f}s)", file=sys.stderr)
        print_table(rows)
        print(f"\nsource and destination: docker-registry {ghcr.host} / {ecr.host} behind counting proxies; "
              f"skopeo {skopeo.run(['--version']).decode().split()[-1]}; {args.latency_ms:g} ms added per source "
              f"request; (a), (b), (c), (e), (f): median of {args.repeat}; total {time.monotonic() - started:.0f}s")
        return 0 if all(ok is not False and g.ok and s.ok for _, g, s, _, ok in rows) else 1
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

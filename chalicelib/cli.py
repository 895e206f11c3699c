"""The `ghcr2ecr` command line: argument parsing only; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

# subcommand -> module whose `main(args) -> int` runs it (imported only when that subcommand runs)
_HANDLERS = {
    "sync": "chalicelib.sync.cli",
    "demo": "standins.demo",
    "create-app": "chalicelib.ops.create_app",
    "deploy": "chalicelib.ops.deploy",
    "destroy": "chalicelib.ops.deploy",
    "revoke-token": "chalicelib.build.revoke_token",
    "run-job": "chalicelib.build.run_job",
    "reconcile": "chalicelib.ops.reconcile",
    "status": "chalicelib.ops.status",
    "retry-dead-letters": "chalicelib.ops.status",
    "store-report": "chalicelib.build.report_store",
}
# What `ghcr2ecr demo` imports beyond the runtime dependencies: module -> distribution (the `demo` extra).
DEMO_MODULES = {"bcrypt": "bcrypt", "moto": "moto[server]", "flask": "moto[server]", "flask_cors": "moto[server]"}
AWS_HELP = (
    "AWS credentials and region come from the standard places: AWS_PROFILE or the default profile, "
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and the region from AWS_REGION, else AWS_DEFAULT_REGION, else "
    "the profile's region (checked before anything is built). Each stage (--stage, default dev) is a separate "
    "deployment: its own support stack, queues, Lambdas and App credentials in .chalice/config.json."
)


def build_parser() -> argparse.ArgumentParser:
    """Build the parser; the `sync` flags are a contract (DESIGN.md, CLI)."""
    parser = argparse.ArgumentParser(prog="ghcr2ecr", description="Mirror ghcr.io images into Amazon ECR.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sync = commands.add_parser(
        "sync",
        help="copy images between OCI registries, digest-exact, moving only missing bytes",
        description="Copy SOURCE to DEST (HOST[:PORT]/REPOSITORY; http:// only for loopback hosts).",
    )
    sync.add_argument("source", metavar="SOURCE")
    sync.add_argument("dest", metavar="DEST")
    sync.add_argument("--tag", action="append", default=[], metavar="TAG",
                      help="tag to copy and set, resolved against the source at sync time (repeatable)")
    sync.add_argument("--digest", metavar="DIGEST", help="manifest digest to copy (an index brings every child)")
    sync.add_argument("--all-tags", action="store_true", help="mirror every tag of SOURCE")
    sync.add_argument("--tags", metavar="GLOBS", help="comma list of tag globs; a leading ! excludes")
    sync.add_argument("--aliases", action="store_true",
                      help="also set the source's other tags of the --digest / --tag digests (filtered by --tags)")
    sync.add_argument("--deadline", type=float, metavar="SECONDS",
                      help="start no new work after this long, report what was left undone (default: "
                      "$GHCR2ECR_DEADLINE_SECONDS; in CodeBuild a minute and a half under the build timeout)")
    sync.add_argument("--budget", type=int, metavar="N",
                      help="source HEADs for listed tags (aliases, --all-tags); default $GHCR2ECR_SYNC_BUDGET or 10000")
    sync.add_argument("--report", metavar="FILE", help="write a JSON report to FILE")
    sync.add_argument("--no-signatures", dest="signatures", action="store_false",
                      help="do not copy cosign sha256-<hex>.sig/.att/.sbom tags of copied digests")
    sync.add_argument("--no-create-repository", dest="create_repository", action="store_false",
                      help="for ECR destinations, do not create a missing repository")
    sync.add_argument("--concurrency", type=int, default=4, metavar="N",
                      help="large blobs copied at once, and as many small ones (up to 1 MiB) alongside (default 4)")
    sync.add_argument("--quiet", action="store_true", help="no progress output")

    demo = commands.add_parser("demo", help="run the whole flow on this machine against local stand-ins")
    demo.add_argument("--keep", action="store_true", help="leave the stand-ins' files in place for inspection")

    create_app = commands.add_parser("create-app", help="create the GitHub App from manifest.yml", epilog=AWS_HELP,
                                     description="Create the stage's GitHub App with GitHub's manifest flow and "
                                                 "store its key and webhook secret in the stage's SSM parameters.")
    create_app.add_argument("--org", help="create the App owned by this organization (default: your user)")
    create_app.add_argument("--stage", default="dev", help="Chalice stage to configure (default dev)")
    create_app.add_argument("--github-url", default="https://github.com", help=argparse.SUPPRESS)
    create_app.add_argument("--port", type=int, default=0, help="local port for the redirect (default: any)")
    create_app.add_argument("--no-browser", action="store_true", help="print the URL instead of opening it")

    add_operator_commands(commands)
    run_job = commands.add_parser(
        "run-job", help="run the build's job (GHCR2ECR_JOB): one sync per package, in turn (the build's command)")
    run_job.add_argument("--report", metavar="FILE", help="write one JSON report for the whole job to FILE")
    run_job.add_argument("--quiet", action="store_true", help="no progress output")

    reconcile = commands.add_parser(
        "reconcile", help="queue an every-tag sync of the mirrored packages now (what the daily schedule does)",
        description="Queue an every-tag sync of every package the stage mirrors (or of one owner's, or one "
                    "package), through the App's own queue, dispatch and build. Uses your AWS credentials and "
                    "the stage's settings from .chalice/config.json.")
    reconcile.add_argument("--stage", default="dev", help="Chalice stage (default dev)")
    reconcile.add_argument("--owner", metavar="LOGIN", help="only this GitHub account's packages")
    reconcile.add_argument("--package", metavar="NAME",
                           help="only this package (with --owner: also one not mirrored yet)")

    revoke = commands.add_parser(
        "revoke-token", help="revoke the installation token in GHCR2ECR_SOURCE_TOKEN (the build's last step)"
    )
    revoke.add_argument("--github-api-url", default=None, help="default: $GITHUB_API_URL or api.github.com")
    store = commands.add_parser(
        "store-report", help="store the build's report under its build id (GHCR2ECR_REPORT_BUCKET, CODEBUILD_BUILD_ID)"
    )
    store.add_argument("file", metavar="FILE", help="the report `ghcr2ecr sync --report` wrote")
    return parser


def add_operator_commands(commands: argparse._SubParsersAction) -> None:
    """Add deploy, destroy, status and retry-dead-letters: the commands an operator runs against AWS."""
    deploy = commands.add_parser(
        "deploy", help="create or update everything in AWS for a stage", epilog=AWS_HELP,
        description="Build the copy bundle, create or update the stage's support stack (queues, CodeBuild, "
                    "bucket, alarms, dashboard), then `chalice deploy` the Lambdas. Safe to re-run; run it again "
                    "after create-app and after changing .chalice/config.json. What it needs to update or remove "
                    "the stage later is kept in AWS, so another checkout or a CI job can run it too.",
    )
    deploy.add_argument("--stage", default="dev", help="Chalice stage (default dev)")
    deploy.add_argument("--compute", choices=("lambda", "ec2"), default=None,
                        help="CodeBuild compute for copies (ec2 for images over 15 minutes); default: what the "
                             "stage uses already, lambda for a new one")
    destroy = commands.add_parser(
        "destroy", help="remove what deploy created for a stage", epilog=AWS_HELP,
        description="chalice delete, empty the bundle bucket, delete the support stack and leftover token "
                    "parameters. The GitHub App, its credentials in SSM, pull secrets and ECR images are kept.",
    )
    destroy.add_argument("--stage", default="dev", help="Chalice stage (default dev)")
    status = commands.add_parser(
        "status", help="show whether a stage works: queues, recent builds, last delivery", epilog=AWS_HELP,
        description="Print the sync queue and dead-letter depths, the last builds (package, digest, tags, status, "
                    "duration, cause) and when the webhook last received a delivery. Exit 0 when healthy, 1 when "
                    "something needs attention (dead letters, a failed latest build), 2 when the stage cannot be "
                    "read (not deployed, no region or credentials).",
    )
    status.add_argument("--stage", default="dev", help="Chalice stage (default dev)")
    status.add_argument("--builds", type=int, default=10, metavar="N", help="how many recent builds (default 10)")
    retry = commands.add_parser(
        "retry-dead-letters", help="move the stage's dead letters back to the sync queue", epilog=AWS_HELP,
        description="Start SQS's own redrive (StartMessageMoveTask) from the dead-letter queue back to the sync "
                    "queue, once the cause that sent them there is fixed.",
    )
    retry.add_argument("--stage", default="dev", help="Chalice stage (default dev)")


def missing_demo_modules() -> list[str]:
    """Return the distributions the demo needs that are not installed."""
    missing = []
    for module, distribution in DEMO_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # ValueError: blocked in sys.modules
            found = False
        if not found and distribution not in missing:
            missing.append(distribution)
    return missing


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand and return its exit code (2 for usage errors)."""
    args = build_parser().parse_args(argv)
    if args.command == "demo" and (missing := missing_demo_modules()):
        print(f"ghcr2ecr demo needs {', '.join(missing)}: pip install 'ghcr2ecr[demo]' "
              "(from a checkout: pip install -e '.[demo]')", file=sys.stderr)
        return 1
    handler = importlib.import_module(_HANDLERS[args.command])
    return int(handler.main(args) or 0)


# The build's commands leave nothing to atexit: they end with os._exit once their output is flushed, skipping
# the interpreter's teardown (freeing every object one by one: 50-90 ms of each run, measured in bench/).
FAST_EXIT = frozenset({"sync", "run-job"})


def entry() -> NoReturn:
    """The `ghcr2ecr` console script and `python -m chalicelib.cli`: run main() and exit with its code."""
    argv = sys.argv[1:]
    code = main(argv)
    if argv[:1] and argv[0] in FAST_EXIT:
        logging.shutdown()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said anyway
            pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()

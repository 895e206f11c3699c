"""`ghcr2ecr status` and `ghcr2ecr retry-dead-letters`: does a stage work, and redrive its dead letters.

status reads AWS's own records only: the support stack's outputs; the queues' depths; CodeBuild's builds of
the copy project (their PLAINTEXT variables name package, digest and tag; the build's report in the report
bucket names the tags it set and its errors); the webhook Lambda's `Invocations` metric, which counts
every delivery GitHub sends, a redelivery included (it arrives the same way); and the hand-off records in the
report bucket (`handoffs/<id>.json`: chalicelib/handoff/record.py). Exit 0 healthy, 1 attention (dead letters,
the latest build failed), 2 unknown (not deployed, AWS refused).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.build import contract, report_store
from chalicelib.config import setting
from chalicelib.handoff import record as handoffs
from chalicelib.ops import state
from chalicelib.ops.chalice_config import ChaliceConfig
from chalicelib.ops.policy import lambda_name
from chalicelib.ops.project import Say, aws_session, find_project_dir, say_stdout
from chalicelib.ops.stack import SupportStack, stack_name

EXIT_OK, EXIT_ATTENTION, EXIT_UNKNOWN = 0, 1, 2
FAILED = frozenset({"FAILED", "FAULT", "TIMED_OUT", "STOPPED"})
CAUSE_LENGTH = 160
# The webhook metric is searched at 5-minute resolution over a day, then hourly over two weeks (GitHub
# keeps deliveries 3 days; CloudWatch keeps 5-minute points 63 days and hourly ones 455).
DELIVERY_WINDOWS = ((timedelta(days=1), 300), (timedelta(days=14), 3600))
HANDOFFS_SHOWN = 5  # the newest hand-offs listed
HANDOFF_PAGES = 10  # ListObjectsV2 pages of hand-off records looked at (1,000 keys each; records expire in 30 days)


@dataclass
class Clients:
    """The AWS clients status and retry-dead-letters use (injected in tests)."""

    cloudformation: Any
    sqs: Any
    codebuild: Any
    cloudwatch: Any
    s3: Any
    ssm: Any
    region: str

    @classmethod
    def from_environment(cls) -> Clients:
        """Build clients from the standard AWS environment (profile, region, AWS_ENDPOINT_URL)."""
        session = aws_session()
        names = ("cloudformation", "sqs", "codebuild", "cloudwatch", "s3", "ssm")
        return cls(**{name: session.client(name) for name in names}, region=session.region_name)


@dataclass(frozen=True)
class Build:
    """One copy build as CodeBuild and its report describe it."""

    status: str
    started: datetime | None
    seconds: float | None
    package: str
    digest: str
    tags: Sequence[str]
    cause: str = ""


@dataclass
class Health:
    """What status found, and the problems that make it exit 1."""

    problems: list[str] = field(default_factory=list)


def queue_depth(sqs: Any, url: str) -> tuple[int, int]:
    """Return (waiting, in flight) messages of a queue (SQS's approximate counts)."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attributes.get(names[0], 0)), int(attributes.get(names[1], 0))


def recent_builds(clients: Clients, project: str, count: int, report_bucket: str | None) -> list[Build]:
    """Return the project's last `count` builds, newest first."""
    ids = clients.codebuild.list_builds_for_project(projectName=project, sortOrder="DESCENDING").get("ids", [])
    ids = ids[:max(0, count)]
    if not ids:
        return []
    records = clients.codebuild.batch_get_builds(ids=ids).get("builds", [])
    order = {build_id: index for index, build_id in enumerate(ids)}
    records.sort(key=lambda record: order.get(record.get("id", ""), len(order)))
    return [build_from(record, read_report(clients.s3, report_bucket, record.get("id", ""))) for record in records]


def read_report(s3: Any, bucket: str | None, build_id: str) -> dict[str, Any] | None:
    """Return a build's `--report` JSON from the report bucket, or None (none written, too big, not JSON)."""
    key = report_store.report_key(build_id)
    data = read_object(s3, bucket, key, report_store.REPORT_LIMIT) if bucket and key else None
    try:
        report = json.loads(data) if data is not None else None
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def read_object(s3: Any, bucket: str, key: str, limit: int) -> bytes | None:
    """Return an object of at most `limit` bytes from the report bucket; None when absent, unreadable or larger."""
    try:
        answer = s3.get_object(Bucket=bucket, Key=key)
        if int(answer.get("ContentLength", 0)) > limit:
            return None
        return bytes(answer["Body"].read(limit + 1))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound", "AccessDenied"):
            return None
        raise


def build_from(record: dict[str, Any], report: dict[str, Any] | None) -> Build:
    """Describe one BatchGetBuilds record (and its report, when there is one)."""
    status = str(record.get("buildStatus", "UNKNOWN"))
    entries = record.get("environment", {}).get("environmentVariables", [])
    build = contract.finished_build(str(record.get("id", "")), status, entries, report)  # the one reader
    started, ended = record.get("startTime"), record.get("endTime")
    seconds = (ended - started).total_seconds() if started and ended else None
    return Build(status=status, started=started, seconds=seconds, package=build.package, digest=build.digest,
                 tags=build.tags, cause=failure_cause(record, build) if status in FAILED else "")


def failure_cause(record: dict[str, Any], build: contract.FinishedBuild) -> str:
    """Return one line saying why a build failed: the sync's own error, else CodeBuild's phase message."""
    if build.cause:
        return _one_line(build.cause)
    for phase in record.get("phases", []):
        if phase.get("phaseStatus") in FAILED:
            messages = [c.get("message", "") for c in phase.get("contexts", []) if c.get("message")]
            return _one_line(f"{phase.get('phaseType', '')}: {messages[0] if messages else phase['phaseStatus']}")
    return "no cause recorded (see the build's log)"


def _one_line(text: str) -> str:
    """Squash whitespace and cut to CAUSE_LENGTH characters."""
    text = " ".join(text.split())
    return text if len(text) <= CAUSE_LENGTH else text[:CAUSE_LENGTH - 3] + "..."


def last_delivery(cloudwatch: Any, function_name: str, now: datetime) -> tuple[datetime, int] | None:
    """Return (start, seconds) of the latest metric period in which the webhook Lambda ran, or None."""
    for window, period in DELIVERY_WINDOWS:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/Lambda", MetricName="Invocations", Dimensions=[{"Name": "FunctionName",
                                                                          "Value": function_name}],
            StartTime=now - window, EndTime=now, Period=period, Statistics=["Sum"],
        ).get("Datapoints", [])
        seen = [point["Timestamp"] for point in points if point.get("Sum", 0) > 0]
        if seen:
            return max(seen), period
    return None


def redelivery_state(ssm: Any, name: str) -> str:
    """Describe redeliver_failed's saved state: when it last ran, how many deliveries it is retrying."""
    try:
        parameter = ssm.get_parameter(Name=name)["Parameter"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return "redeliver_failed has not run yet"
        raise
    try:
        tries = json.loads(parameter["Value"]).get("tries") or {}
    except (ValueError, AttributeError):
        tries = {}
    when = parameter.get("LastModifiedDate")
    last = f"{when.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC" if isinstance(when, datetime) else "?"
    return f"redeliver_failed last saved its state {last}; retrying {len(tries)} failed delivery(s)"


def status(args: argparse.Namespace, *, project_dir: Path, clients: Clients, say: Say = say_stdout,
           now: datetime | None = None) -> int:
    """Print the stage's health; return EXIT_OK, EXIT_ATTENTION or EXIT_UNKNOWN."""
    stage, now = args.stage, now or datetime.now(timezone.utc)
    config = ChaliceConfig(project_dir)
    stack = SupportStack(clients.cloudformation, stack_name(config.app_name, stage), say)
    outputs = stack.outputs()
    if not outputs:
        say(f"stage {stage}: not deployed in {clients.region} (no stack {stack.name}); run `ghcr2ecr deploy "
            f"--stage {stage}`")
        return EXIT_UNKNOWN
    health = Health()
    say(f"stage {stage} in {clients.region} (stack {stack.name})")

    waiting, in_flight = queue_depth(clients.sqs, outputs["SyncQueueUrl"])
    say(f"  sync queue:    {waiting} waiting, {in_flight} being dispatched")
    dead, _ = queue_depth(clients.sqs, outputs["DeadLetterQueueUrl"])
    say(f"  dead letters:  {dead}" + (f" (the dispatch log says why; once fixed: ghcr2ecr retry-dead-letters "
                                      f"--stage {stage})" if dead else ""))
    if dead:
        health.problems.append(f"{dead} dead letter(s)")

    delivery = last_delivery(clients.cloudwatch, lambda_name(config.app_name, stage, "api_handler"), now)
    if delivery is None:
        say("  last delivery: none in the last 14 days (check the App's webhook URL and that it is Active)")
    else:
        when, period = delivery
        span = "5 minutes" if period == 300 else "hour"
        say(f"  last delivery: in the {span} from {when.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC")

    recorded = state.load_stage(clients.ssm, config, stage) or {}
    env = {**config.env(stage), **{k: v for k, v in recorded.get("environment_variables", {}).items() if v}}
    say("  redeliveries:  " + redelivery_state(clients.ssm, setting("REDELIVERY_STATE_PARAMETER", env)))
    app_id = env.get("GITHUB_APP_ID", "")
    if not app_id:
        health.problems.append("no GitHub App")
        say(f"  GitHub App:    none yet (ghcr2ecr create-app --stage {stage})")

    project = outputs.get("CodeBuildProjectName", f"{config.app_name}-{stage}-copy")
    builds = recent_builds(clients, project, args.builds, outputs.get("ReportBucketName"))
    say(f"  builds of {project}: " + ("none yet" if not builds else f"the last {len(builds)}, newest first"))
    for build in builds:
        say("    " + format_build(build))
    finished = [build for build in builds if build.status != "IN_PROGRESS"]
    if finished and finished[0].status in FAILED:
        health.problems.append(f"the latest build {finished[0].status}")

    show_handoffs(clients.s3, outputs.get("ReportBucketName"), env, stage, say)

    if health.problems:
        say(f"status: needs attention: {'; '.join(health.problems)}")
        return EXIT_ATTENTION
    say("status: ok")
    return EXIT_OK


def format_build(build: Build) -> str:
    """Return one build as one line: when, status, duration, package, digest, tags, cause."""
    started = f"{build.started.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}Z" if build.started else "-"
    seconds = f"{build.seconds:.0f} s" if build.seconds is not None else "-"
    digest = build.digest[:19] if build.digest else "-"
    tags = ",".join(build.tags) or "-"
    line = f"{started}  {build.status:<11} {seconds:>6}  {build.package or '-'}  {digest}  {tags}"
    return line + (f"  {build.cause}" if build.cause else "")


def recent_handoffs(s3: Any, bucket: str, count: int) -> tuple[list[handoffs.Handoff], int, bool]:
    """Return the `count` most recently changed hand-off records, newest first, how many exist, and if more do."""
    found: list[dict[str, Any]] = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="handoffs/", Delimiter="/")
    more = False
    for number, page in enumerate(pages):  # the delimiter leaves handoffs/digests/ out: records only
        if number == HANDOFF_PAGES:
            more = True
            break
        found += [item for item in page.get("Contents", []) if item["Key"].endswith(".json")]
    if count <= 0 or not found:
        return [], len(found), more
    # LastModified has whole seconds: keep every record changed in the cut-off second, then order by the record's
    # own time of its last change.
    found.sort(key=lambda item: item["LastModified"], reverse=True)
    cutoff = found[min(count, len(found)) - 1]["LastModified"]
    read = [read_handoff(s3, bucket, item["Key"]) for item in found if item["LastModified"] >= cutoff]
    records = sorted((r for r in read if r is not None), key=lambda r: (r.updated, r.created), reverse=True)
    return records[:count], len(found), more


def read_handoff(s3: Any, bucket: str, key: str) -> handoffs.Handoff | None:
    """Return one hand-off record, or None (gone since the listing, too big, not a record)."""
    data = read_object(s3, bucket, key, handoffs.RECORD_LIMIT)
    return handoffs.Handoff.from_json(data) if data is not None else None


def show_handoffs(s3: Any, bucket: str | None, env: dict[str, str], stage: str, say: Say) -> None:
    """Print the newest workflow hand-offs, or why there are none."""
    if not env.get("HANDOFF_AUDIENCE", "").strip():
        say(f"  hand-offs:     off (HANDOFF_AUDIENCE is empty; ghcr2ecr deploy --stage {stage} sets it)")
        return
    if not bucket:
        say(f"  hand-offs:     no report bucket to keep them in (ghcr2ecr deploy --stage {stage})")
        return
    records, total, more = recent_handoffs(s3, bucket, HANDOFFS_SHOWN)
    if not records:
        say("  hand-offs:     none in the last 30 days")
        return
    of = f"{total}{'+' if more else ''} within 30 days"
    say(f"  hand-offs:     the last {len(records)} of {of}, newest first")
    for found in records:
        say("    " + format_handoff(found))


def format_handoff(handoff: handoffs.Handoff) -> str:
    """Return one hand-off as one line: when, id, repository, package@digest, status, reason."""
    when = datetime.fromtimestamp(handoff.created, timezone.utc)
    line = (f"{when:%Y-%m-%d %H:%M:%S}Z  {handoff.id}  {handoff.repository}  {handoff.package}@"
            f"{handoff.digest[:19]}  {handoff.status}")
    return line + (f"  {_one_line(handoff.reason)}" if handoff.reason else "")


def retry_dead_letters(args: argparse.Namespace, *, project_dir: Path, clients: Clients,
                       say: Say = say_stdout) -> int:
    """Start SQS's redrive from the dead-letter queue back to the sync queue; return the exit code."""
    stage = args.stage
    config = ChaliceConfig(project_dir)
    outputs = SupportStack(clients.cloudformation, stack_name(config.app_name, stage), say).outputs()
    if not outputs:
        say(f"retry-dead-letters: stage {stage} is not deployed in {clients.region}")
        return EXIT_UNKNOWN
    dead, _ = queue_depth(clients.sqs, outputs["DeadLetterQueueUrl"])
    if not dead:
        say(f"no dead letters in {outputs['DeadLetterQueueArn'].rsplit(':', 1)[-1]}: nothing to retry")
        return EXIT_OK
    # The destination is named although it is the default: the redrive then never goes anywhere else.
    task = clients.sqs.start_message_move_task(SourceArn=outputs["DeadLetterQueueArn"],
                                               DestinationArn=outputs["SyncQueueArn"])
    say(f"moving {dead} dead letter(s) back to {outputs['SyncQueueArn'].rsplit(':', 1)[-1]} (SQS task "
        f"{task.get('TaskHandle', '?')[:24]}...); `ghcr2ecr status --stage {stage}` shows them leave")
    return EXIT_OK


def main(args: argparse.Namespace) -> int:
    """Entry point for `ghcr2ecr status` and `ghcr2ecr retry-dead-letters`."""
    project_dir = find_project_dir()
    clients = Clients.from_environment()
    run = retry_dead_letters if args.command == "retry-dead-letters" else status
    try:
        return run(args, project_dir=project_dir, clients=clients)
    except (ClientError, BotoCoreError) as exc:
        print(f"{args.command}: AWS refused a step: {exc}", flush=True)
        return EXIT_UNKNOWN

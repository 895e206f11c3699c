#!/usr/bin/env python3
"""Hand a pushed ghcr.io image to a ghcr2ecr deployment and wait for its copy in Amazon ECR.

Run by action.yml as one composite step. Standard library only (the runner has python3, nothing else),
and Python 3.8 syntax, for self-hosted runners with an old python3.

Environment (action.yml maps each input to one variable; inputs never enter the shell script's text):
  INPUT_URL               the deployment's API base URL; https://, or http:// for loopback hosts only
  INPUT_IMAGE             ghcr.io/<owner>/<package>@sha256:<hex>; the name part is lower-cased
  INPUT_AUDIENCE          the ID token's audience; empty means INPUT_URL as given
  INPUT_TOKEN             the job's GITHUB_TOKEN, sent once in the hand-off's body
  INPUT_WAIT              true | false: poll until the copy ends
  INPUT_TIMEOUT_MINUTES   how long to wait, in minutes (decimals allowed)
  INPUT_FAIL_ON_ERROR     true | false: exit 1 when the hand-off fails or times out
  ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN   set by the runner (id-token: write)
  GITHUB_OUTPUT, GITHUB_STEP_SUMMARY                           set by the runner
  HANDOFF_SLEEP_SCALE     multiplies every wait between requests (tests set it small); default 1

Outputs: `status` (succeeded | failed | timed-out | queued), `image` (the ECR reference by digest, empty
unless succeeded), `tags` (the tags set in ECR, comma-separated: the tag grammar has no comma or space).
Exit status: 0 when the copy succeeded (or was queued with wait: false), else 1 unless fail-on-error is
false.
"""

from __future__ import annotations

import html
import http.client
import ipaddress
import json
import math
import os
import random
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional

ANSWER_CAP = 64 * 1024  # bytes read from any answer; more is refused
REQUEST_TIMEOUT = 30.0  # seconds per socket operation
SUBMIT_ATTEMPTS = 6  # the POST: waits of about 2, 4, 8, 16, 30 s between them
MINT_ATTEMPTS = 4
FIRST_POLL, POLL_GROWTH, LONGEST_POLL = 3.0, 1.25, 15.0  # seconds between status polls
RETRY_AFTER_CAP = 60.0
TRANSIENT = frozenset({429, 502, 503, 504})  # 502/504: API Gateway's answers for a failed or slow Lambda
USER_AGENT = "ghcr2ecr-action/1"

# The OCI distribution grammar for repository names; ghcr.io names are <owner>/<package>[/<more>].
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
GHCR_IMAGE = re.compile(r"ghcr\.io/%s(?:/%s)+@sha256:[a-f0-9]{64}" % (_COMPONENT, _COMPONENT))
ECR_IMAGE = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?/%s(?:/%s)*@sha256:[a-f0-9]{64}" % (_COMPONENT, _COMPONENT))
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
HANDOFF_ID = re.compile(r"[A-Za-z0-9._~-]{1,200}")  # URL-unreserved characters only: it goes into a path
JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

REFUSED_HANDOFF = {
    400: "The request or the image reference was malformed: `image` must be "
         "ghcr.io/<owner>/<package>@sha256:<digest> (docker/build-push-action's `digest` output).",
    401: "The deployment could not verify this job's ID token: `audience` (default: `url`) must equal the "
         "deployment's audience, the API URL `ghcr2ecr deploy` prints; check the runner's clock too.",
    403: "This repository's owner is not allowed by the deployment (ask its operator to add it to "
         "ALLOWED_ACCOUNTS), or the image belongs to another owner: hand off only "
         "ghcr.io/<this repository's owner>/... images.",
    404: "Hand-offs are not enabled in this deployment (ask its operator), or `url` is not the "
         "deployment's API base URL.",
    413: "The request was over the deployment's size limit: `image` and `token` should be a few hundred bytes.",
}
REFUSED_POLL = {
    401: REFUSED_HANDOFF[401],
    404: "The deployment does not know this hand-off for this repository: a hand-off can only be followed "
         "by jobs of the repository that made it.",
}


class Failure(Exception):
    """The hand-off did not succeed: one-line cause, what to do, and the `status` output it sets."""

    def __init__(self, cause: str, remedy: str = "", status: str = "failed") -> None:
        super().__init__(cause)
        self.cause, self.remedy, self.status = cause, remedy, status
        self.source, self.handoff_id = "", ""  # known once the image was handed over


class Unreachable(Exception):
    """No HTTP answer: connection refused or reset, DNS, TLS, or a timeout."""


@dataclass(frozen=True)
class Inputs:
    """The action's inputs, checked."""

    url: str
    image: str
    audience: str
    token: str
    wait: bool
    timeout_minutes: float


@dataclass
class Outcome:
    """What the step reports: outputs, summary and exit status."""

    status: str
    source: str = ""
    handoff_id: str = ""
    image: str = ""
    tags: List[str] = field(default_factory=list)
    cause: str = ""
    remedy: str = ""
    bytes_moved: Optional[int] = None
    duration_seconds: Optional[float] = None


@dataclass
class Answer:
    """One HTTP answer, read up to ANSWER_CAP."""

    status: int
    body: Optional[dict]
    retry_after: Optional[float]


# --- printing: everything the runner reads from stdout is a potential workflow command ---------------

def clean(text: object, limit: int = 300) -> str:
    """Make outside text one inert line: no control characters, no `::` or `##[` workflow commands."""
    line = re.sub(r"[\x00-\x1f\x7f\x85\u2028\u2029]+", " ", str(text)).strip()
    # The runner reads `::name::data` (and the older `##[name]data`) as commands (actions/runner
    # ActionCommandManager); splitting the markers keeps server text from ever forming one.
    line = re.sub(r":(?=:)", ": ", line)
    line = re.sub(r"#(?=#)", "# ", line)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def command_data(text: str) -> str:
    """Escape a workflow command's data (actions/toolkit packages/core/src/command.ts escapeData)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def say(message: str) -> None:
    """Print one log line, never a workflow command."""
    print("ghcr2ecr: " + clean(message, 2000), flush=True)


def mask(secret: str) -> None:
    """Ask the runner to hide a secret in every later log line."""
    if secret:
        print("::add-mask::" + command_data(secret), flush=True)


def annotate(level: str, message: str) -> None:
    """Print an error or warning annotation."""
    print("::%s title=ghcr2ecr::%s" % (level, command_data(clean(message, 2000))), flush=True)


# --- inputs ---------------------------------------------------------------------------------------

def parse_bool(name: str, value: str) -> bool:
    """Read a boolean input the way actions/toolkit getBooleanInput does (YAML 1.2 core schema)."""
    if value.strip() in ("true", "True", "TRUE"):
        return True
    if value.strip() in ("false", "False", "FALSE"):
        return False
    raise Failure("input `%s` is %r, not true or false" % (name, clean(value, 40)), "Set it to true or false.")


def is_loopback(host: str) -> bool:
    """Tell whether a URL's host is this machine: localhost, 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """Return the API base URL without a trailing slash, or refuse it."""
    remedy = "Set `url` to the deployment's API URL as `ghcr2ecr deploy` prints it (https://...)."
    if not url or re.search(r"[\s\x00-\x1f\x7f]", url):
        raise Failure("input `url` is empty or holds spaces or control characters", remedy)
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise Failure("input `url` must be an https:// URL, not %r" % clean(url, 200), remedy)
    if parts.scheme == "http" and not is_loopback(host):
        raise Failure("input `url` uses plain http:// for %s: the token would cross the network in clear; "
                      "http:// is accepted for loopback hosts only" % clean(host, 200), remedy)
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise Failure("input `url` must not hold credentials, a query or a fragment", remedy)
    try:
        _ = parts.port  # urllib raises ValueError only when the port is read
    except ValueError:
        raise Failure("input `url` has an invalid port", remedy) from None
    return url.rstrip("/")


def check_image(image: str) -> str:
    """Return the image reference with its name lower-cased (as ghcr.io stores it), or refuse it."""
    name, at, digest = image.strip().partition("@")
    normalized = name.lower() + at + digest
    if not GHCR_IMAGE.fullmatch(normalized):
        raise Failure("input `image` is %r, not ghcr.io/<owner>/<package>@sha256:<64 hex digits>" % clean(image, 200),
                      "Pass the pushed digest, e.g. ghcr.io/${{ github.repository_owner }}/app@"
                      "${{ steps.build.outputs.digest }}.")
    return normalized


def check_minutes(value: str) -> float:
    """Return timeout-minutes as a positive number of minutes, at most 6 hours (a job's limit)."""
    try:
        minutes = float(value)
    except ValueError:
        minutes = float("nan")
    if not (math.isfinite(minutes) and 0 < minutes <= 360):
        raise Failure("input `timeout-minutes` is %r, not a number of minutes above 0 and at most 360"
                      % clean(value, 40), "Set it to e.g. 15.")
    return minutes


def read_inputs(env: Mapping[str, str]) -> Inputs:
    """Check every input before anything is sent."""
    url = env.get("INPUT_URL", "").strip()
    token = env.get("INPUT_TOKEN", "").strip()
    if not token:
        raise Failure("input `token` is empty", "Leave `token` unset (it defaults to the job's GITHUB_TOKEN).")
    return Inputs(
        url=check_url(url),
        image=check_image(env.get("INPUT_IMAGE", "")),
        audience=env.get("INPUT_AUDIENCE", "").strip() or url,
        token=token,
        wait=parse_bool("wait", env.get("INPUT_WAIT", "true")),
        timeout_minutes=check_minutes(env.get("INPUT_TIMEOUT_MINUTES", "15").strip()),
    )


# --- HTTP -----------------------------------------------------------------------------------------

class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Turn every redirect into an error answer."""

    # urllib would follow it and copy every header, Authorization included, to the new URL, on any host
    # (CPython Lib/urllib/request.py, HTTPRedirectHandler.redirect_request).
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        """Follow nothing."""
        return None


_OPENER = urllib.request.build_opener(_RefuseRedirects)


def send(method: str, url: str, headers: Dict[str, str], body: Optional[bytes] = None) -> Answer:
    """Send one request and read its answer, or raise Unreachable."""
    headers = dict(headers, **{"User-Agent": USER_AGENT, "Accept": "application/json"})
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        try:
            response = _OPENER.open(request, timeout=REQUEST_TIMEOUT)
            status = response.status
        except urllib.error.HTTPError as error:
            response, status = error, error.code  # an error answer is still an answer, with a body
        retry_after = response.headers.get("Retry-After") if response.headers is not None else None
        raw = b""
        if getattr(response, "fp", None) is not None:  # an HTTPError may come without a body
            try:
                raw = response.read(ANSWER_CAP + 1)
            finally:
                response.close()
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise Unreachable(clean(reason, 200) or type(error).__name__) from None
    if len(raw) > ANSWER_CAP:
        raise Failure("%s %s answered more than %d KiB" % (method, clean(url, 200), ANSWER_CAP // 1024),
                      "Check that `url` is the deployment's API URL.")
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except ValueError:
        parsed = None
    delay = None
    if retry_after and retry_after.strip().isdigit():  # the delta-seconds form; an HTTP date is ignored
        delay = min(float(retry_after.strip()), RETRY_AFTER_CAP)
    return Answer(status=status, body=parsed if isinstance(parsed, dict) else None, retry_after=delay)


def server_reason(answer: Answer) -> str:
    """Return the reason an answer gives, if any, as one inert line."""
    body = answer.body or {}
    # The App's own answers carry `reason`; Chalice's error answers carry `Message` (ChaliceViewError).
    for key in ("reason", "message", "Message"):
        if isinstance(body.get(key), str) and body[key].strip():
            return clean(body[key])
    return ""


# --- the protocol ---------------------------------------------------------------------------------

class Client:
    """Talks to the runner's ID-token service and to the deployment's two hand-off routes."""

    def __init__(self, env: Mapping[str, str], inputs: Inputs, sleep: Callable[[float], None]) -> None:
        self.env, self.inputs, self.sleep = env, inputs, sleep
        try:
            scale = float(env.get("HANDOFF_SLEEP_SCALE", "") or 1)
        except ValueError:
            scale = 1.0
        self.scale = scale if math.isfinite(scale) and scale >= 0 else 1.0

    def pause(self, seconds: float) -> None:
        """Wait between requests, with a little jitter so many jobs do not retry in step."""
        self.sleep(seconds * random.uniform(0.8, 1.2) * self.scale)

    def id_token(self) -> str:
        """Mint a fresh Actions OIDC ID token for the audience, and mask it."""
        url = self.env.get("ACTIONS_ID_TOKEN_REQUEST_URL", "")
        request_token = self.env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
        if not url or not request_token:
            raise Failure("this job cannot request an ID token (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN are unset)",
                          "Give the job `permissions: id-token: write` (and `packages: read`). Pull requests "
                          "from forks get no ID token, so skip this step for them.")
        # actions/toolkit packages/core/src/oidc-utils.ts appends `&audience=` to the runner's URL, which
        # already carries a query string (`?api-version=...`).
        joiner = "&" if "?" in url else "?"
        full = url + joiner + "audience=" + urllib.parse.quote(self.inputs.audience, safe="")
        problem = ""
        for attempt in range(1, MINT_ATTEMPTS + 1):
            if attempt > 1:
                self.pause(2.0 ** (attempt - 1))
            try:
                # The request token goes to this URL only: it mints ID tokens for any audience.
                answer = send("GET", full, {"Authorization": "Bearer " + request_token})
            except Unreachable as error:
                problem = "the runner's ID-token service is unreachable: %s" % error
                continue
            if answer.status == 200:
                value = (answer.body or {}).get("value")
                if isinstance(value, str) and len(value) < 16384 and JWT.fullmatch(value):
                    mask(value)
                    return value
                raise Failure("the runner's ID-token service answered no token", "Re-run the job.")
            problem = "the runner's ID-token service answered HTTP %d" % answer.status
            if answer.status not in TRANSIENT and answer.status < 500:
                break
        raise Failure(problem, "Check that the job has `permissions: id-token: write`; re-run the job.")

    def hand_off(self) -> str:
        """POST the image and token; return the hand-off's id."""
        url = self.inputs.url + "/github/handoff"
        body = json.dumps({"image": self.inputs.image, "token": self.inputs.token}).encode("utf-8")
        problem = ""
        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            headers = {"Authorization": "Bearer " + self.id_token()}
            try:
                answer = send("POST", url, headers, body)
            except Unreachable as error:
                problem, delay = "could not reach %s: %s" % (clean(url, 200), error), None
            else:
                if answer.status in (200, 201, 202):
                    handoff_id = (answer.body or {}).get("id")
                    if isinstance(handoff_id, str) and HANDOFF_ID.fullmatch(handoff_id):
                        return handoff_id
                    raise Failure("the deployment accepted the hand-off but answered no usable id",
                                  "Check that `url` is the deployment's API URL.")
                if answer.status not in TRANSIENT:
                    raise refused("the hand-off", answer, REFUSED_HANDOFF)
                problem, delay = "the deployment answered HTTP %d" % answer.status, answer.retry_after
            if attempt < SUBMIT_ATTEMPTS:
                say("%s; trying again (%d/%d)" % (problem, attempt + 1, SUBMIT_ATTEMPTS))
                self.pause(delay if delay is not None else min(2.0 ** attempt, 30.0))
        raise Failure(problem + " (%d attempts)" % SUBMIT_ATTEMPTS,
                      "Check `url`; if it is right, the deployment is unavailable: ask its operator.")

    def wait_for(self, handoff_id: str, deadline: float) -> Dict[str, object]:
        """Poll the hand-off with a fresh ID token each time until it ends or the deadline passes."""
        url = self.inputs.url + "/github/handoff/" + urllib.parse.quote(handoff_id, safe="")
        interval, seen = FIRST_POLL, "queued"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Failure("the copy was still %s after %g minutes" % (seen, self.inputs.timeout_minutes),
                              "It may still finish, but it uses this job's GITHUB_TOKEN, which stops working "
                              "when the job ends: raise `timeout-minutes`, or ask the deployment's operator "
                              "why copies are slow.", status="timed-out")
            self.sleep(min(interval * self.scale, remaining))
            interval = min(interval * POLL_GROWTH, LONGEST_POLL)
            headers = {"Authorization": "Bearer " + self.id_token()}  # ID tokens live 5 minutes
            try:
                answer = send("GET", url, headers)
            except Unreachable as error:
                say("could not reach the deployment (%s); polling on" % error)
                continue
            if answer.status in TRANSIENT:
                continue
            if answer.status != 200:
                raise refused("the status of hand-off %s" % handoff_id, answer, REFUSED_POLL)
            status = (answer.body or {}).get("status")
            if status in ("succeeded", "failed"):
                return answer.body
            if status not in ("queued", "running"):
                raise Failure("the deployment answered an unknown status %r" % clean(status, 40),
                              "Check that `url` is the deployment's API URL.")
            if status != seen:
                say("hand-off %s is %s" % (handoff_id, status))
                seen = status


def refused(what: str, answer: Answer, remedies: Mapping[int, str]) -> Failure:
    """Describe a final refusal by the deployment."""
    reason = server_reason(answer)
    cause = "the deployment refused %s with HTTP %d%s" % (what, answer.status, ": " + reason if reason else "")
    return Failure(cause, remedies.get(answer.status, "Check `url`; if it is right, ask the deployment's operator."))


def finished(source: str, handoff_id: str, body: Mapping[str, object]) -> Outcome:
    """Turn the deployment's final status answer into an outcome, trusting only well-formed fields."""
    outcome = Outcome(status=str(body.get("status")), source=source, handoff_id=handoff_id)
    moved, took = body.get("bytes_moved"), body.get("duration_seconds")  # the sync report's names
    if isinstance(moved, int) and not isinstance(moved, bool) and moved >= 0:
        outcome.bytes_moved = moved
    if isinstance(took, (int, float)) and not isinstance(took, bool) and math.isfinite(took) and took >= 0:
        outcome.duration_seconds = float(took)
    if outcome.status == "failed":
        outcome.cause = "the copy failed: " + (server_reason(Answer(200, dict(body), None)) or "no reason given")
        outcome.remedy = ("A `denied` from ghcr.io means this job's token cannot pull the package: give the job "
                          "`permissions: packages: read`, and for a package first pushed with a personal token, "
                          "add this repository under the package's \"Manage Actions access\". Otherwise ask the "
                          "deployment's operator.")
        return outcome
    image, tags = body.get("image"), body.get("tags")
    if not (isinstance(image, str) and ECR_IMAGE.fullmatch(image)):
        outcome.status, outcome.cause = "failed", "the deployment reported success but no valid ECR image"
        outcome.remedy = "Ask the deployment's operator."
        return outcome
    outcome.image = image
    if isinstance(tags, list):
        outcome.tags = [tag for tag in tags if isinstance(tag, str) and TAG.fullmatch(tag)]
    return outcome


def run(env: Mapping[str, str], sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """Hand the image off and, with wait: true, follow it to its end."""
    started = time.monotonic()
    inputs = read_inputs(env)
    client = Client(env, inputs, sleep)
    handoff_id = client.hand_off()
    say("handed over %s as hand-off %s" % (inputs.image, handoff_id))
    if not inputs.wait:
        return Outcome(status="queued", source=inputs.image, handoff_id=handoff_id)
    try:
        body = client.wait_for(handoff_id, started + inputs.timeout_minutes * 60)
    except Failure as failure:
        failure.source, failure.handoff_id = inputs.image, handoff_id
        raise
    return finished(inputs.image, handoff_id, body)


# --- reporting ------------------------------------------------------------------------------------

def write_outputs(path: str, values: Mapping[str, str]) -> None:
    """Append step outputs in the runner's `name<<delimiter` form, safe for any value."""
    with open(path, "a", encoding="utf-8") as out:
        for name, value in values.items():
            # actions/toolkit packages/core/src/file-command.ts prepareKeyValueMessage: a random delimiter
            # that the value cannot contain.
            delimiter = "ghadelimiter_" + uuid.uuid4().hex
            out.write("%s<<%s\n%s\n%s\n" % (name, delimiter, value, delimiter))


def markdown(text: str) -> str:
    """Escape outside text for the step summary: plain text, no links, images, HTML or tables."""
    return html.escape(re.sub(r"([\\`*_\[\]()#|!~])", r"\\\1", clean(text, 1000)), quote=False)


def human_bytes(count: int) -> str:
    """Format a byte count for people."""
    if count < 1000:
        return "%d B" % count
    size, units = count / 1000.0, ["KB", "MB", "GB", "TB"]
    while size >= 999.95 and len(units) > 1:  # what "%.1f" would show as 1000.0
        size, units = size / 1000, units[1:]
    return "%.1f %s (%d bytes)" % (size, units[0], count)


def summary(outcome: Outcome) -> str:
    """Render the step summary."""
    rows = []
    if outcome.source:
        rows.append(("Source", "`%s`" % outcome.source))
    if outcome.status == "succeeded":
        title = "### ghcr2ecr: the image is in Amazon ECR"
        rows.append(("ECR image", "`%s`" % outcome.image))
        rows.append(("Tags", ", ".join("`%s`" % tag for tag in outcome.tags) or "none"))
        if outcome.bytes_moved is not None:
            rows.append(("Bytes moved", human_bytes(outcome.bytes_moved)))
        if outcome.duration_seconds is not None:
            rows.append(("Copy duration", "%.1f s" % outcome.duration_seconds))
    elif outcome.status == "queued":
        title = "### ghcr2ecr: handed over, not waiting (`wait: false`)"
    else:
        title = "### ghcr2ecr: the hand-off %s" % ("timed out" if outcome.status == "timed-out" else "failed")
    if outcome.handoff_id:
        rows.append(("Hand-off", "`%s`" % outcome.handoff_id))
    lines = [title, ""]
    if outcome.cause:
        lines += ["**Cause:** " + markdown(outcome.cause), ""]
    if outcome.remedy:  # the script's own Markdown, never outside text
        lines += ["**What to do:** " + outcome.remedy, ""]
    if outcome.status == "queued":
        lines += ["The copy uses this job's GITHUB_TOKEN, so it must finish before the job ends.", ""]
    if rows:
        lines += ["| | |", "|---|---|"] + ["| %s | %s |" % row for row in rows] + [""]
    return "\n".join(lines) + "\n"


def report(env: Mapping[str, str], outcome: Outcome) -> None:
    """Write the outputs and the step summary, where the runner provides them."""
    if env.get("GITHUB_OUTPUT"):
        write_outputs(env["GITHUB_OUTPUT"], {"status": outcome.status, "image": outcome.image,
                                             "tags": ",".join(outcome.tags)})
    if env.get("GITHUB_STEP_SUMMARY"):
        with open(env["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as out:
            out.write(summary(outcome))


def main(env: Mapping[str, str] = os.environ) -> int:
    """Run the step; return its exit status."""
    # Masks first: nothing may be printed before the runner knows what to hide.
    mask(env.get("INPUT_TOKEN", "").strip())
    mask(env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", ""))
    try:
        fail_on_error = parse_bool("fail-on-error", env.get("INPUT_FAIL_ON_ERROR", "true"))
    except Failure as failure:
        annotate("error", "%s. %s" % (failure.cause, failure.remedy))
        return 1  # before fail-on-error is known, a failure fails the step
    try:
        outcome = run(env)
    except Failure as failure:
        outcome = Outcome(status=failure.status, cause=failure.cause, remedy=failure.remedy,
                          source=failure.source, handoff_id=failure.handoff_id)
    report(env, outcome)
    if outcome.status in ("succeeded", "queued"):
        say("%s: %s" % (outcome.status, outcome.image or outcome.handoff_id))
        return 0
    message = "%s. %s" % (outcome.cause, outcome.remedy) if outcome.remedy else outcome.cause
    annotate("error" if fail_on_error else "warning", message)
    return 1 if fail_on_error else 0


if __name__ == "__main__":
    sys.exit(main())

"""What a tenant reads on the `ghcr2ecr` check run: conclusion, title and summary, from what a build left.

Pure functions of the build's final state and its `--report` JSON (which may be missing: a build that timed
out or died wrote none). The report is our build's, but its strings come from registries: they are cut to a
few hundred characters, put in code spans, and never hold a credential (the engine writes kinds, not values).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.outcome.requests import Output
from chalicelib.values import human_size, mapping

CONCLUSION = {"SUCCEEDED": "success", "FAILED": "failure", "FAULT": "failure", "STOPPED": "cancelled",
              "TIMED_OUT": "timed_out"}
TEXT_LIMIT = 300
OPERATORS_GUIDE = "docs/operators.md"


@dataclass(frozen=True)
class FinalState:
    """A finished build as on_build_state sees it: the event's status and variables, and the report, if any."""

    status: str
    source: str  # ghcr.io/owner/package
    destination: str  # REGISTRY/PREFIX/OWNER/REPOSITORY
    digest: str
    tag: str
    build_id: str
    duration_seconds: float | None = None
    report: Mapping[str, Any] | None = None
    fallback_secret: str = ""  # where the operator puts a read credential for this owner
    skipped: str = ""  # why the build set nothing on purpose (its filter admits no tag), when it says so
    cause: str = ""  # the build's one-line cause when it failed without a sync report


def unwrap(report: Mapping[str, Any] | None) -> tuple[Mapping[str, Any] | None, str, str]:
    """Return (sync report, package status, reason) of a job report's first package, or a sync report as is."""
    if report is None or not isinstance(report.get("packages"), list):
        return report, "", ""
    first = report["packages"][0] if report["packages"] and isinstance(report["packages"][0], dict) else {}
    inner = first.get("report")
    return (inner if isinstance(inner, dict) else None, str(first.get("status", "")),
            _text(str(first.get("reason", ""))))


def conclusion(state: FinalState) -> str:
    """Return the check run's conclusion for a final build status."""
    if state.status == "SUCCEEDED" and state.skipped:
        return "neutral"
    return CONCLUSION.get(state.status, "failure")


def outcome_output(state: FinalState) -> Output:
    """Describe a finished build: success with where the image is, or the cause and what to do."""
    if state.status == "SUCCEEDED" and state.skipped:
        return Output("Nothing mirrored", f"{_text(state.skipped)}\n\nNothing was set or created in ECR.")
    if state.status == "SUCCEEDED":
        return _success(state)
    report = state.report
    if report is None or not _strings(report.get("errors")) and not _strings(_tags(report).get("conflicts")):
        if state.cause:
            report = {"errors": [state.cause]}
        else:
            return _died(state)
    return _failure(state, report)


def not_started(variable: str | None, problem: str) -> Output:
    """Describe a sync that dispatch refused before any build (an invalid Actions variable, a bad name)."""
    if variable:
        return Output(f"Not mirrored: Actions variable {variable} is invalid",
                      f"{_code(problem)}\n\n**What to do**: fix the Actions variable `{variable}` (repository or "
                      "organization variables), then push again. An invalid value is never replaced by a default.")
    return Output("Not mirrored", f"{_code(problem)}\n\n**What to do**: ask the operator of this ghcr2ecr deployment.")


def started(source: str, destination: str, tag: str) -> Output:
    """Describe a build that was just started."""
    return Output(f"Mirroring {tag} to ECR", f"Copying `{_text(bare(source))}:{_text(tag)}` to "
                  f"`{_text(bare(destination))}`.")


def pull_reference(state: FinalState) -> str:
    """Return the ECR image URI by digest."""
    return f"{bare(state.destination)}@{state.digest}"


def bare(reference: str) -> str:
    """Return a reference without the `http://` a loopback registry carries (the demo's ECR stand-in)."""
    return reference.removeprefix("http://").removeprefix("https://")


def _success(state: FinalState) -> Output:
    report = state.report or {}
    tags = _tags(report)
    set_now, unchanged = _strings(tags.get("set")), _strings(tags.get("unchanged"))
    aliases = _strings(tags.get("aliases")) or _strings(report.get("aliases"))
    on_digest = [t for t in [*set_now, *unchanged] if _digests(report).get(t, state.digest) == state.digest]
    shown = list(dict.fromkeys([*on_digest, *aliases])) or [state.tag]
    uri = pull_reference(state)
    moved = report.get("bytes_moved")
    duration = report.get("duration_seconds", state.duration_seconds)
    lines = [f"**Image**: `{_text(uri)}`",
             f"**Tags**: {', '.join(f'`{_text(t)}`' for t in shown[:50])}"
             + (f" and {len(shown) - 50} more" if len(shown) > 50 else "")
             + (" (aliases included)" if aliases or len(shown) > 1 else "")]
    if isinstance(moved, int):
        lines.append(f"**Bytes moved**: {human_size(moved)}" + ("" if moved else " (everything was already in ECR)"))
    if isinstance(duration, (int, float)):
        lines.append(f"**Duration**: {float(duration):.1f} s")
    skipped = mapping(tags.get("skipped"))
    for tag, why in list(skipped.items())[:10]:
        lines.append(f"**Not set**: `{_text(str(tag))}`: {_text(str(why))}")
    if state.report is None:
        lines.append("The build stored no report, so the tags and bytes are not shown.")
    lines += ["", "Pull it with:", "", "```sh", f"docker pull {_text(uri)}", "```"]
    return Output(f"Mirrored to ECR: {_short(state)}", "\n".join(lines))


def _failure(state: FinalState, report: Mapping[str, Any]) -> Output:
    errors = _strings(report.get("errors"))
    conflicts = _strings(_tags(report).get("conflicts"))
    if errors:
        cause = errors[0]
        if " denied" in cause or cause.startswith("access to"):
            title = f"Not mirrored: GHCR denied access to {_package(state)}"
            todo = (f"GHCR does not let GitHub App tokens pull private images yet. The operator of this ghcr2ecr "
                    f"deployment stores a read credential for `{_package(state)}` (a token with `read:packages`) in "
                    f"AWS Secrets Manager as `{_text(state.fallback_secret) or 'the pull secret of this owner'}`; "
                    f"see \"Private packages\" in {OPERATORS_GUIDE}. Then push again or re-run the sync.")
        else:
            title = "Not mirrored: " + _text(cause, 120)
            todo = "Ask the operator of this ghcr2ecr deployment, with the build id below."
    else:
        tag = _conflict_tag(report, conflicts[0])
        cause = conflicts[0]
        title = f"Not mirrored: tag {tag} conflicts in an immutable ECR repository" if tag else \
            "Not mirrored: immutable tag conflict in ECR"
        todo = (f"The ECR repository is immutable and `{_text(tag or 'a tag')}` already points at another digest "
                "there. Push under a new tag, or have the operator exclude or remove that tag in ECR.")
    more = len(errors) + len(conflicts) - 1
    summary = [f"**Cause**: {_code(cause)}" + (f" (and {more} more)" if more > 0 else ""), "",
               f"**What to do**: {todo}", "", f"Build `{_text(state.build_id)}` ({state.status})."]
    return Output(title, "\n".join(summary))


def _died(state: FinalState) -> Output:
    how = {"TIMED_OUT": "timed out", "STOPPED": "was stopped", "FAULT": "failed inside CodeBuild"}.get(
        state.status, "failed")
    title = f"Not mirrored: the copy build {how}"
    summary = (f"The build for `{_text(state.source)}@{_text(state.digest)}` {how} ({state.status}) before it "
               "stored a report. No tag in ECR points at partly copied content, and the next sync finishes what "
               f"is missing.\n\n**What to do**: push again, or ask the operator to look at build "
               f"`{_text(state.build_id)}` (a very large image may need the ec2 compute).")
    return Output(title, summary)


def _conflict_tag(report: Mapping[str, Any], message: str) -> str | None:
    """Find the conflicting tag: the one named in the message, else the one neither set nor unchanged."""
    tags = _tags(report)
    done = {*_strings(tags.get("set")), *_strings(tags.get("unchanged")), *(tags.get("skipped") or {})}
    candidates = [t for t in _digests(report) if t not in done]
    named = [t for t in candidates if re.search(rf"(?<![\w.-]){re.escape(t)}(?![\w.-])", message)]
    found = named or candidates or ([message] if re.fullmatch(r"[\w][\w.-]{0,127}", message) else [])
    return _text(found[0], 128) if found else None


def _short(state: FinalState) -> str:
    repository = bare(state.destination).split("/", 1)[-1]
    return _text(f"{repository}@{state.digest[:19]}…", 160)


def _package(state: FinalState) -> str:
    return _text(bare(state.source).split("/", 1)[-1], 120)


def _tags(report: Mapping[str, Any]) -> Mapping[str, Any]:
    tags = report.get("tags")
    return tags if isinstance(tags, dict) else {}


def _digests(report: Mapping[str, Any]) -> dict[str, str]:
    digests = report.get("digests")
    return {str(k): str(v) for k, v in digests.items()} if isinstance(digests, dict) else {}


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value if isinstance(v, str)] if isinstance(value, Sequence) and not isinstance(
        value, str) else []


def _text(value: str, limit: int = TEXT_LIMIT) -> str:
    """One line, at most `limit` characters, without backticks (it goes into a Markdown code span)."""
    flat = " ".join(str(value).replace("`", "'").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _code(value: str) -> str:
    return f"`{_text(value)}`"

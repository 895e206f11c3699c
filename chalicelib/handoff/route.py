"""The hand-off routes' edge: verify the ID token, authorize on ids, store the job token, queue, answer.

Like the webhook, no GitHub API call here (DESIGN.md, `POST /github/handoff`): what needs the installation
(installed? suspended? the package's GHCR2ECR_HANDOFF?) is decided by dispatch. Order matters: the ID token
is verified before the body is read, so a request that fails verification stores and queues nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib import aws, logs
from chalicelib.build import token_cleanup
from chalicelib.config import Settings, settings
from chalicelib.handoff import record
from chalicelib.handoff.verify import Caller, IssuerUnavailable, Unverified, verifier_for
from chalicelib.jobs import LOGIN, InvalidJob, Job, Package, handoff_job
from chalicelib.registry.reference import DIGEST_PATTERN, REPOSITORY_PATTERN, TAG_PATTERN

Answer = tuple[int, dict[str, Any]]
MAX_BODY_BYTES = 16 * 1024  # an image reference and a token (GitHub's may be ~520 characters: FACTS.md §2)
MAX_TOKEN_CHARS = 4096
GHCR_HOST = "ghcr.io"
_IMAGE = re.compile(r"(?P<host>[^/@]{1,253})/(?P<owner>[^/@]{1,80})/(?P<package>[^@]{1,200})@(?P<digest>[^@]{1,80})")


class BadRequest(ValueError):
    """The body or the image reference is not what the route accepts (400)."""


@dataclass(frozen=True)
class Image:
    """A hand-off's image: `ghcr.io/<owner>/<package>@sha256:<hex>`, checked against the OCI grammar."""

    owner: str
    package: str
    digest: str


def parse_image(text: str, registry: str) -> Image:
    """Parse the image reference; the host must be ghcr.io (or the deployment's GHCR_REGISTRY host)."""
    match = _IMAGE.fullmatch(text.strip())
    if match is None:
        raise BadRequest("image must be ghcr.io/<owner>/<package>@sha256:<hex>")
    hosts = {GHCR_HOST, registry.split("://", 1)[-1].rstrip("/").lower()}
    if match["host"].lower() not in hosts:
        raise BadRequest(f"image must be on {GHCR_HOST}")
    owner, package, digest = match["owner"], match["package"].lower(), match["digest"]
    if not LOGIN.fullmatch(owner) or not REPOSITORY_PATTERN.fullmatch(package) or not DIGEST_PATTERN.fullmatch(digest):
        raise BadRequest("image must be ghcr.io/<owner>/<package>@sha256:<64 hex>, a valid owner and package name")
    return Image(owner, package, digest)


def parse_body(body: bytes) -> tuple[str, str, str | None]:
    """Return (image, token, tag) from the JSON body; raise BadRequest."""
    try:
        data = json.loads(body or b"null")
    except (ValueError, RecursionError):
        raise BadRequest("body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object with image and token")
    image, token, tag = data.get("image"), data.get("token"), data.get("tag")
    if not isinstance(image, str) or not image:
        raise BadRequest("image is missing")
    if not isinstance(token, str) or not token.strip() or len(token) > MAX_TOKEN_CHARS:
        raise BadRequest("token is missing (the job's GITHUB_TOKEN)")
    if tag is not None and (not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag)):
        raise BadRequest("tag is not a valid tag")
    return image, token.strip(), tag


def bearer(headers: Mapping[str, str]) -> str | None:
    """Return the ID token of `Authorization: Bearer <token>`, or None."""
    scheme, _, value = (headers.get("authorization") or "").strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def caller_of(config: Settings, headers: Mapping[str, str]) -> Caller | Answer:
    """Verify the request's ID token; the Caller, or the answer refusing it (401, 503)."""
    token = bearer(headers)
    if token is None:
        return _answer(401, "missing Authorization: Bearer <Actions OIDC ID token>")
    try:
        return verifier_for(config.oidc_issuer, config.handoff_audience).verify(token)
    except IssuerUnavailable as exc:
        return _answer(503, f"could not verify the ID token now ({exc.reason}); retry")
    except Unverified as exc:
        return _answer(401, exc.reason)


def receive(headers: Mapping[str, str], body: bytes) -> Answer:
    """POST /github/handoff: return (HTTP status, JSON body)."""
    logs.unbind_all()
    config = settings()
    if not config.handoff_audience:
        return _answer(404, "hand-offs are not enabled in this deployment (HANDOFF_AUDIENCE is empty)")
    if len(body) > MAX_BODY_BYTES:
        return _answer(413, f"body over {MAX_BODY_BYTES} bytes")
    caller = caller_of(config, headers)
    if not isinstance(caller, Caller):
        return caller
    logs.bind(repository_id=caller.repository_id, owner_id=caller.repository_owner_id, run_id=caller.run_id or None)
    try:
        text, token, tag = parse_body(body)
        image = parse_image(text, config.ghcr_registry)
    except BadRequest as exc:
        return _answer(400, str(exc))
    if not config.account_allowed(caller.repository_owner, caller.repository_owner_id):
        return _answer(403, f"account {caller.repository_owner} is not allowed by ALLOWED_ACCOUNTS")
    if image.owner.lower() != caller.repository_owner.lower():
        return _answer(403, f"the image belongs to {image.owner}, not to {caller.repository_owner}, the owner of "
                            f"{caller.repository}")
    repository = caller.repository.split("/", 1)[1] if "/" in caller.repository else None
    package = Package(owner=caller.repository_owner, owner_id=caller.repository_owner_id, name=image.package,
                      repository=repository)
    handoff_id = record.new_id()
    logs.bind(handoff=handoff_id, package=package.path, digest=image.digest)
    try:
        job = handoff_job(package, image.digest, tag, handoff_id, caller.sha)
    except InvalidJob as exc:
        return _answer(400, str(exc))
    return _accept(config, job, caller, token)


def _accept(config: Settings, job: Job, caller: Caller, token: str) -> Answer:
    """Store the job token by reference, write the record, queue the job; 503 when any of it fails."""
    package = job.package
    parameter = token_parameter(config, job.correlation_id)
    handoff = record.Handoff(id=job.correlation_id, repository_id=caller.repository_id, repository=caller.repository,
                             owner_id=package.owner_id, owner=package.owner, package=package.name,
                             digest=str(job.selection.digest), tag=job.selection.tag)
    written = False
    try:
        # The job's GITHUB_TOKEN: a SecureString under the hand-off's own name, passed to the build by reference
        aws.ssm().put_secret(parameter, token, f"ghcr2ecr hand-off {job.correlation_id}: a workflow job's token")
        written = True
        record.save(config.report_bucket, handoff)
        aws.sqs().send_fifo(config.sync_queue_url, job.to_json(), job.group_id, job.dedup_id)
    except Exception as exc:  # SSM, S3 or SQS unavailable: nothing may be half-accepted, the action retries
        logs.logger.error("could not accept the hand-off", extra={"error": type(exc).__name__})
        logs.count("HandoffFailures")
        if written:
            token_cleanup.delete_quietly(parameter)
        return _answer(503, "could not store or queue the hand-off; retry")
    logs.logger.info("hand-off queued")
    logs.count("HandoffsQueued")
    return 202, {"status": "queued", "id": job.correlation_id}


def status(headers: Mapping[str, str], handoff_id: str) -> Answer:
    """GET /github/handoff/{id}: the record, only to an ID token of the repository that handed it off."""
    logs.unbind_all()
    config = settings()
    if not config.handoff_audience:
        return _answer(404, "hand-offs are not enabled in this deployment (HANDOFF_AUDIENCE is empty)")
    caller = caller_of(config, headers)
    if not isinstance(caller, Caller):
        return caller
    try:
        found = record.load(config.report_bucket, handoff_id)
    except Exception as exc:
        logs.logger.error("could not read the hand-off record", extra={"error": type(exc).__name__})
        return _answer(503, "could not read the hand-off; retry")
    if found is None or found.repository_id != caller.repository_id:
        return _answer(404, "no such hand-off for this repository")
    return 200, found.answer()


def token_parameter(config: Settings, handoff_id: str) -> str:
    """Return the SSM name of a hand-off's job token (under TOKEN_PARAMETER_PREFIX: the sweep removes leftovers)."""
    return config.token_parameter_prefix.rstrip("/") + "/handoff/" + handoff_id


def _answer(status: int, reason: str) -> Answer:
    log = logs.logger.info if status < 400 else logs.logger.warning
    log("hand-off answered", extra={"http_status": status, "reason": reason})
    return status, {"status": "rejected" if status < 500 else "unavailable", "reason": reason}

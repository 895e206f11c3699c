"""Amazon ECR specifics: registry credentials from GetAuthorizationToken, and CreateRepository.

boto3 honours `AWS_ENDPOINT_URL`, so the same code runs against a local moto server; setting
`GHCR2ECR_DEST_ECR=true` sends a non-ECR destination host (the local demo's registry) down this path.
"""

from __future__ import annotations

import base64
import datetime
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)
RENEW_BEFORE_SECONDS = 300  # ECR tokens last 12 h (FACTS.md §8); renew 5 minutes early


def ecr_client(region: str | None) -> Any:
    """Build a boto3 ECR client with timeouts and bounded retries."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 5, "mode": "standard"})
    return boto3.client("ecr", region_name=region, config=config)


def ecr_forced(env: Mapping[str, str]) -> bool:
    """Tell whether GHCR2ECR_DEST_ECR=true asks for the ECR path on any destination host."""
    return env.get("GHCR2ECR_DEST_ECR", "").strip().lower() in ("1", "true", "yes")


# GetAuthorizationToken answers per client (its account, region and role), for the whole registry: every sync
# that uses the same client (run-job shares one across its packages) reuses the answer until it is due.
_TOKENS: weakref.WeakKeyDictionary[Any, dict[str | None, tuple[str, str, float]]] = weakref.WeakKeyDictionary()
_TOKENS_LOCK = threading.Lock()


class EcrCredential:
    """Basic credentials `AWS:<password>` from GetAuthorizationToken, cached per client until shortly before expiry."""

    kind = "ECR GetAuthorizationToken"

    def __init__(self, client: Callable[[], Any], registry_id: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._registry_id = registry_id
        self._clock = clock
        self._own: dict[str | None, tuple[str, str, float]] = {}  # for a client that takes no weak reference

    def __repr__(self) -> str:
        """Never show the cached password."""
        return f"EcrCredential(registry_id={self._registry_id!r})"

    def basic(self) -> tuple[str, str] | None:
        """Return ("AWS", password), calling GetAuthorizationToken when the client's cache is empty or stale."""
        client = self._client()
        with _TOKENS_LOCK:
            try:
                cache = _TOKENS.setdefault(client, {})
            except TypeError:  # not weakly referenceable: this credential keeps its own
                cache = self._own
            cached = cache.get(self._registry_id)
            if cached and cached[2] - RENEW_BEFORE_SECONDS > self._clock():
                return cached[0], cached[1]
            kwargs = {"registryIds": [self._registry_id]} if self._registry_id else {}
            data = client.get_authorization_token(**kwargs)["authorizationData"][0]
            username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
            expires = data.get("expiresAt")
            expiry = expires.timestamp() if isinstance(expires, datetime.datetime) else self._clock() + 3600
            # ECR's tokens last 12 h; moto answers expiresAt=2015-01-01 for every one (FACTS.md §9): an expiry
            # already past is taken as one minute from now, so a stand-in is not asked again at every request.
            if expiry <= self._clock():
                expiry = self._clock() + RENEW_BEFORE_SECONDS + 60
            cache[self._registry_id] = (username, password, expiry)
            return username, password


OWNER_ID_TAG = "ghcr2ecr:owner-id"
# What reconcile needs to find a package again (chalicelib/heal/reconcile.py), recorded when the repository is made
# and brought up to date by each sync: the source, the owner's id, the linked repository, the installation.
SOURCE_TAG, OWNER_TAG, PACKAGE_TAG = "ghcr2ecr:source", "ghcr2ecr:owner", "ghcr2ecr:package"
LINKED_REPOSITORY_TAG, INSTALLATION_TAG = "ghcr2ecr:repository", "ghcr2ecr:installation-id"
RECORDED = (SOURCE_TAG, OWNER_TAG, PACKAGE_TAG, LINKED_REPOSITORY_TAG, INSTALLATION_TAG)  # kept current


def prepare_repository(client: Callable[[], Any], name: str, source: Any, env: Mapping[str, str], *,
                       create: bool) -> bool | None:
    """Create (when `create`) and check the destination repository; True/False: created or not, None: not asked.

    `env` may name the owner's numeric GitHub id (`GHCR2ECR_OWNER_ID`), the installation
    (`GHCR2ECR_INSTALLATION_ID`) and the linked repository (`GHCR2ECR_LINKED_REPOSITORY`), as the App's build does.
    """
    owner, _, package = source.name.partition("/")
    tags = {SOURCE_TAG: str(source)[:256], OWNER_TAG: owner[:256], PACKAGE_TAG: (package or owner)[:256]}
    for variable, key, what in (("GHCR2ECR_OWNER_ID", OWNER_ID_TAG, "account"),
                                ("GHCR2ECR_INSTALLATION_ID", INSTALLATION_TAG, "installation")):
        value = env.get(variable, "").strip()
        if value and not value.isdigit():
            raise ValueError(f"{variable} must be a numeric GitHub {what} id, not {value[:40]!r}")
        if value:
            tags[key] = value
    linked = env.get("GHCR2ECR_LINKED_REPOSITORY", "").strip()
    if linked:
        tags[LINKED_REPOSITORY_TAG] = linked[:256]
    owner_id = tags.get(OWNER_ID_TAG, "")
    if not (create or owner_id):
        return None
    created = ensure_repository(client(), name, tags, create=create)
    return created if create else None


class RepositoryOwnedElsewhere(ValueError):
    """The destination repository was made for another GitHub account id than this sync's owner."""


def ensure_repository(client: Any, name: str, tags: Mapping[str, str], *, create: bool = True) -> bool:
    """Create the ECR repository if missing (when `create`); check its owner; return True when created.

    GitHub logins can be renamed and then taken by a new account (docs/FACTS.md §1: store ids, not
    logins), while destinations are named by login. So a repository carries the numeric owner id it was
    made for (tag `ghcr2ecr:owner-id`), and a sync for another id is refused. A repository without the
    tag (made by hand or by a creation template) is claimed on first use.
    """
    owner_id = tags.get(OWNER_ID_TAG)
    if create:
        try:
            client.create_repository(
                repositoryName=name,
                tags=[{"Key": key, "Value": value} for key, value in tags.items()],
            )
            log.info("created ECR repository %s", name)
            return True
        except client.exceptions.RepositoryAlreadyExistsException:
            pass  # an expected answer: someone (or a creation template) made it already
    if owner_id:
        _check_owner(client, name, owner_id, tags)
    return False


def _check_owner(client: Any, name: str, owner_id: str, wanted: Mapping[str, str]) -> None:
    """Refuse a repository tagged for another owner id; tag an untagged one with ours; bring RECORDED up to date."""
    try:
        arn = client.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryArn"]
    except client.exceptions.RepositoryNotFoundException:
        return  # --no-create-repository and no repository: the push itself says what is missing
    tags = {t["Key"]: t["Value"] for t in client.list_tags_for_resource(resourceArn=arn).get("tags", [])}
    holder = tags.get(OWNER_ID_TAG)
    changed = {key: wanted[key] for key in RECORDED if key in wanted and tags.get(key) != wanted[key]}
    if holder is None:
        changed[OWNER_ID_TAG] = owner_id
    if holder is None or holder == owner_id:
        if changed:
            client.tag_resource(resourceArn=arn, tags=[{"Key": k, "Value": v} for k, v in changed.items()])
        return
    raise RepositoryOwnedElsewhere(
        f"ECR repository {name} was created for GitHub account id {holder}, not {owner_id}: the login was "
        "probably renamed and taken by another account; nothing was copied (delete or retag the "
        f"repository's {OWNER_ID_TAG} tag if this is intended)")

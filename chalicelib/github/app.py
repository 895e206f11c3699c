"""The GitHub App, the one seam to GitHub's REST API (githubkit): the App JWT, installation tokens, and every call.

With the App JWT: installations, token minting, webhook deliveries and their redelivery. With an installation
token: Actions variables, check runs, storage records. Every call is bounded (TIMEOUT_SECONDS, _retry_policy).
The healing and reporting calls raise only chalicelib.github.errors' types; dispatch's reads and minting
let githubkit's transient errors through as they are (dispatch logs their type; SQS redelivers).
The build's revocation is the stdlib's (chalicelib/github/revoke.py): the build never loads githubkit.

githubkit is imported only when a client is built, never on the webhook's import path. Tests hand the
client an httpx transport through the constructor (faults at the HTTP boundary).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from chalicelib.github import revoke as revocation
from chalicelib.github.errors import (GitHubError, InstallationUnavailable, mapped, message,
                                      rate_limited)
from chalicelib.values import mapping

if TYPE_CHECKING:
    from githubkit import GitHub
    from githubkit.response import Response

PER_PAGE = 30  # GitHub's maximum for the variables endpoints (FACTS.md §4)
MAX_PAGES = 10  # 300 variables per scope: bounded, far above any real configuration
TIMEOUT_SECONDS = 10.0
REVOKE_TIMEOUT_SECONDS = 5.0  # per attempt (three); an unused token expires within the hour anyway
RETRIES, RETRY_BACKOFF_SECONDS = 2, 0.5  # quick retries in-call; SQS redelivery is the slower outer loop
CONFIRMED_LIMIT = 1024  # installations whose account this container has confirmed (bounded memory)
INSTALLATIONS_PER_PAGE = 100  # GitHub's maximum (rest/apps/apps#list-installations-for-the-authenticated-app)
# A path segment GitHub could name: a login (an EMU login ends in _shortcode) and a repository name.
LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}(?:_[A-Za-z0-9]{1,38})?")
REPOSITORY_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")


@dataclass(frozen=True)
class InstallationToken:
    """A minted installation token; the value never appears in repr or logs."""

    value: str = field(repr=False)
    expires_at: str


@dataclass(frozen=True)
class CheckRun:
    """A check run as GitHub answers it: its id, status, and the external id its creator gave it."""

    id: int
    status: str
    external_id: str | None


def _retry_policy() -> Callable[[Any, int], Any]:
    """Retry 5xx, timeouts and refused connections twice with a short backoff; SQS redelivery is the slower loop."""
    import httpx
    from githubkit.exception import RequestError, RequestFailed, RequestTimeout
    from githubkit.typing import RetryOption

    def decide(exc: Any, count: int) -> Any:
        transient = isinstance(exc, RequestTimeout) or (
            isinstance(exc, RequestFailed) and exc.response.status_code >= 500
        ) or (  # no connection: the request was never sent, so even a POST is safe to send again
            type(exc) is RequestError and isinstance(exc.exc, httpx.ConnectError)
        )
        if transient and count < RETRIES:
            # githubkit sleeps 60 s when retry_after is falsy, and timedelta(0) is falsy (githubkit/core.py).
            return RetryOption(True, timedelta(seconds=max(RETRY_BACKOFF_SECONDS * (count + 1), 0.001)))
        return RetryOption(False)

    return decide


def _client(auth: Any, api_url: str, transport: Any = None, **options: Any) -> GitHub:
    from githubkit import GitHub

    # http_cache off: a cached variables page would hide a tenant's change.
    return GitHub(auth, base_url=api_url.rstrip("/") + "/", timeout=TIMEOUT_SECONDS, http_cache=False,
                  auto_retry=_retry_policy(), transport=transport, **options)


class GitHubApp:
    """The App: calls with its JWT (token minting among them), and calls with the installation tokens it mints."""

    def __init__(self, app_id: str, private_key: str, api_url: str, transport: Any = None) -> None:
        from githubkit import AppAuthStrategy
        from githubkit.cache import MemCacheStrategy

        self.api_url = api_url
        self.transport = transport  # an httpx transport replacing the network (tests), or None
        # FACTS.md §2 trap: githubkit's request model drops `actions_variables` and
        # `organization_actions_variables` from `permissions`; with validation off the body is sent as given.
        # Own JWT cache: githubkit's default one is process-wide and keyed by issuer only, not by key.
        self._app = _client(AppAuthStrategy(app_id, private_key), api_url, transport, rest_api_validate_body=False,
                            cache_strategy=MemCacheStrategy())
        self._accounts: dict[int, int] = {}  # installation id -> account id (never changes for an installation)

    def check_installation(self, installation_id: int, owner_id: int) -> None:
        """GET /app/installations/{id}: refuse one that is gone, suspended, or not the package owner's."""
        from githubkit.exception import RequestFailed

        # The fallback secret is chosen by the owner id, so the installation must be that account's. An
        # installation's account never changes: asked once per container (a suspension is caught by mint_token).
        account_id = self._accounts.get(installation_id)
        if account_id is None:
            try:
                data = self._app.rest.apps.get_installation(installation_id).json()
            except RequestFailed as exc:
                if exc.response.status_code == 404:
                    raise _gone(installation_id) from None
                raise
            account = mapping(data.get("account"))
            found = account.get("id")
            account_id = found if isinstance(found, int) else -1
            if data.get("suspended_at"):  # not remembered: it may be unsuspended
                raise _suspended(installation_id)
            if len(self._accounts) >= CONFIRMED_LIMIT:
                self._accounts.clear()
            self._accounts[installation_id] = account_id
        if account_id != owner_id:
            raise InstallationUnavailable("account_mismatch", f"installation {installation_id} belongs to account "
                                          f"{account_id}, not to the package's owner {owner_id}; refused")

    def installation_of(self, owner: str, owner_id: int) -> tuple[int, bool]:
        """Find the installation on an account (a hand-off names only the owner); its id and whether an organization.

        GET /users/{login}/installation (App JWT), which answers for organizations too (UNVERIFIED on github.com:
        on a 404 /orgs/{org}/installation is asked as well). The account's id must be the ID token's owner id.
        """
        from githubkit.exception import RequestFailed

        data: dict[str, Any] = {}
        for path in (f"/users/{owner}/installation", f"/orgs/{owner}/installation"):
            try:
                data = self._app.request("GET", path).json()
                break
            except RequestFailed as exc:
                if exc.response.status_code != 404 or rate_limited(exc):
                    raise
        if not data:
            raise InstallationUnavailable("not_installed", f"the App is not installed on {owner}; install it there, "
                                          "or ask the deployment's operator to")
        account = mapping(data.get("account"))
        installation_id = data.get("id")
        if account.get("id") != owner_id or not isinstance(installation_id, int) or installation_id <= 0:
            raise InstallationUnavailable("account_mismatch", f"the installation on {owner} belongs to another "
                                          "account than the ID token's owner; refused")
        if data.get("suspended_at"):
            raise _suspended(installation_id)
        return installation_id, str(data.get("target_type", "")) == "Organization"

    def mint_token(self, installation_id: int, repositories: list[str] | None,
                   permissions: Mapping[str, str]) -> InstallationToken:
        """POST /app/installations/{id}/access_tokens; raise InstallationUnavailable when GitHub refuses."""
        from githubkit.exception import RequestFailed

        body: dict[str, Any] = {"permissions": dict(permissions)}
        if repositories is not None:
            body["repositories"] = repositories
        try:
            # FACTS.md §2: the typed body would drop two permission names; the client sends this one as given
            response = self._app.rest.apps.create_installation_access_token(
                installation_id, data=body)  # type: ignore[call-overload]
        except RequestFailed as exc:
            if rate_limited(exc):
                raise
            status = exc.response.status_code
            if status == 404:
                raise _gone(installation_id) from None
            if status == 403:
                raise _suspended(installation_id) from None
            if status == 422:
                raise InstallationUnavailable("token_refused", f"GitHub refused a token for installation "
                                              f"{installation_id} ({message(exc)}); check that the installation "
                                              "includes the repository and accepted the App's permissions") from None
            raise
        data = response.json()  # not parsed_data: the model would drop permission names too
        return InstallationToken(value=str(data["token"]), expires_at=str(data.get("expires_at", "")))

    def variables(self, token: InstallationToken, owner: str, repository: str | None,
                  organization: bool) -> dict[str, str]:
        """Read Actions variables: repository over organization-shared; organization ones without a repository."""
        github = self._as(token)
        if repository is not None:
            shared = self._pages(github, f"/repos/{owner}/{repository}/actions/organization-variables",
                                 missing_ok=True)
            return {**shared, **self._pages(github, f"/repos/{owner}/{repository}/actions/variables")}
        if organization:
            return self._pages(github, f"/orgs/{owner}/actions/variables")
        return {}  # a user account has no organization variables

    # -- with the App JWT: healing --------------------------------------------------------------------------
    def webhook_deliveries(self, per_page: int, max_pages: int) -> Iterator[list[Any]]:
        """GET /app/hook/deliveries: pages of the App's deliveries, newest first; each item as GitHub lists it."""
        # docs.github.com rest/apps/webhooks#list-deliveries-for-an-app-webhook: cursor pagination, through the
        # Link header only; its URL is followed as given (a new query would drop the cursor), on this API only.
        url: str | None = None
        for _ in range(max_pages):
            with mapped("GET /app/hook/deliveries"):
                response = (self._app.rest.apps.list_webhook_deliveries(per_page=per_page) if url is None
                            else self._app.request("GET", url))
            yield _items(response, "GET /app/hook/deliveries")
            url = next_link(response.headers.get("link", ""), self.api_url)
            if url is None:
                return

    def redeliver(self, delivery_id: int) -> None:
        """POST /app/hook/deliveries/{id}/attempts: ask GitHub to send a delivery again (202; it does so later)."""
        with mapped(f"POST /app/hook/deliveries/{delivery_id}/attempts"):
            self._app.rest.apps.redeliver_webhook_delivery(delivery_id)

    def installations(self, max_pages: int) -> list[Any]:
        """GET /app/installations: every installation of the App (up to max_pages of 100), as GitHub lists them."""
        found: list[Any] = []
        for number in range(1, max_pages + 1):
            with mapped("GET /app/installations"):
                response = self._app.rest.apps.list_installations(per_page=INSTALLATIONS_PER_PAGE, page=number)
            items = _items(response, "GET /app/installations")
            found += items
            if len(items) < INSTALLATIONS_PER_PAGE:
                break
        return found

    # -- with an installation token: reporting --------------------------------------------------------------
    def create_check_run(self, token: InstallationToken, repository: str, body: Mapping[str, Any]) -> CheckRun:
        """POST /repos/{owner}/{repo}/check-runs (`checks: write`); return the check run GitHub created."""
        owner, name = split_repository(repository)
        call = f"POST /repos/{owner}/{name}/check-runs"
        github = self._as(token)  # held: githubkit's `rest` namespace keeps only a weak reference to its client
        with mapped(call):
            response = github.rest.checks.create(owner, name, data=cast(Any, dict(body)))
        return _check_run(response, call)

    def get_check_run(self, token: InstallationToken, repository: str, check_run_id: int) -> CheckRun:
        """GET /repos/{owner}/{repo}/check-runs/{id}: its status and external id."""
        owner, name = split_repository(repository)
        call = f"GET /repos/{owner}/{name}/check-runs/{_positive(check_run_id)}"
        github = self._as(token)
        with mapped(call):
            response = github.rest.checks.get(owner, name, check_run_id)
        return _check_run(response, call)

    def update_check_run(self, token: InstallationToken, repository: str, check_run_id: int,
                         body: Mapping[str, Any]) -> CheckRun:
        """PATCH /repos/{owner}/{repo}/check-runs/{id} (`checks: write`); return the check run as updated."""
        owner, name = split_repository(repository)
        call = f"PATCH /repos/{owner}/{name}/check-runs/{_positive(check_run_id)}"
        github = self._as(token)
        with mapped(call):
            response = github.rest.checks.update(owner, name, check_run_id, data=cast(Any, dict(body)))
        return _check_run(response, call)

    def create_storage_record(self, token: InstallationToken, org: str, body: Mapping[str, Any]) -> None:
        """POST /orgs/{org}/artifacts/metadata/storage-record (`artifact_metadata: write`)."""
        # docs.github.com rest/orgs/artifact-metadata#create-artifact-metadata-storage-record
        call = f"POST /orgs/{check_login(org)}/artifacts/metadata/storage-record"
        github = self._as(token)
        with mapped(call):
            github.rest.orgs.create_artifact_storage_record(org, data=cast(Any, dict(body)))

    def revoke(self, token: InstallationToken) -> str:
        """DELETE /installation/token with the token itself; "revoked" or "already invalid" (FACTS.md §2)."""
        # One revocation for the build's `finally`, on_build_state and dispatch (the standard library's HTTP).
        return revocation.revoke(token.value, self.api_url, timeout=REVOKE_TIMEOUT_SECONDS)

    def _as(self, token: InstallationToken) -> GitHub:
        """Return a client authenticated by an installation token (the same bounds as the App's)."""
        return _client(token.value, self.api_url, self.transport)

    @staticmethod
    def _pages(github: GitHub, path: str, missing_ok: bool = False) -> dict[str, str]:
        from githubkit.exception import RequestFailed

        found: dict[str, str] = {}
        for page in range(1, MAX_PAGES + 1):
            try:
                data = github.request("GET", path, params={"per_page": PER_PAGE, "page": page}).json()
            except RequestFailed as exc:
                if rate_limited(exc):  # passes: raise, so SQS redelivers the message later
                    raise
                status = exc.response.status_code
                if status == 404 and missing_ok:
                    return found
                if status in (403, 404):
                    raise InstallationUnavailable(
                        "variables_unreadable", f"cannot read Actions variables at {path} ({status} "
                        f"{message(exc)}); the App needs actions_variables / organization_actions_variables: read"
                    ) from None
                raise
            batch = data.get("variables") or []
            for item in batch:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    found[item["name"].upper()] = str(item.get("value", ""))
            if len(batch) < PER_PAGE or page * PER_PAGE >= int(data.get("total_count", 0)):
                break
        return found


def _gone(installation_id: int) -> InstallationUnavailable:
    """Return the permanent error for an uninstalled App (GitHub answers 404)."""
    return InstallationUnavailable("installation_gone", f"installation {installation_id} no longer exists (the App "
                                   "was uninstalled)")


def _suspended(installation_id: int) -> InstallationUnavailable:
    """Return the permanent error for a suspended installation."""
    return InstallationUnavailable("installation_suspended", f"installation {installation_id} is suspended; "
                                   "unsuspend it in the account's settings")


def split_repository(full_name: str) -> tuple[str, str]:
    """Return (owner, name) of `owner/name`, refusing anything else: both become segments of a URL path."""
    owner, _, name = full_name.partition("/")
    if not (LOGIN.fullmatch(owner) and REPOSITORY_NAME.fullmatch(name) and name not in (".", "..")):
        raise ValueError(f"not a repository full name: {full_name[:80]!r}")
    return owner, name


def check_login(login: str) -> str:
    """Return an account login, refusing anything else (it becomes a segment of a URL path)."""
    if not LOGIN.fullmatch(login):
        raise ValueError(f"not an organization login: {login[:80]!r}")
    return login


def next_link(header: str, api_url: str) -> str | None:
    """Return the rel="next" URL of a Link header, only when it stays on the GitHub API we call."""
    base = api_url.rstrip("/") + "/"
    for part in header.split(",")[:10]:
        match = re.fullmatch(r'\s*<([^<>]{1,2000})>\s*;\s*rel="next"\s*', part)
        if match and match.group(1).startswith(base):
            return match.group(1)
    return None


def _items(response: Response[Any], call: str) -> list[Any]:
    """Return a listing's items; GitHubError when the answer is not a JSON list."""
    items = _json(response)
    if not isinstance(items, list):
        raise GitHubError(f"{call} did not answer a list", response.status_code)
    return items


def _check_run(response: Response[Any], call: str) -> CheckRun:
    """Read the check run GitHub answered; GitHubError when the answer is not one."""
    data = _json(response)
    if not isinstance(data, dict) or type(data.get("id")) is not int or data["id"] <= 0:
        raise GitHubError(f"{call} answered no check run", response.status_code)
    external_id = data.get("external_id")
    return CheckRun(data["id"], str(data.get("status") or ""), external_id if isinstance(external_id, str) else None)


def _json(response: Response[Any]) -> Any:
    """Return an answer's JSON body, or None when it has none (remote input: the callers check its shape)."""
    try:
        return response.json()
    except ValueError:
        return None


def _positive(check_run_id: int) -> int:
    """Return a check run id, refusing anything but a positive number (it becomes a segment of a URL path)."""
    if type(check_run_id) is not int or check_run_id <= 0:
        raise ValueError("a check run id is a positive number")
    return check_run_id

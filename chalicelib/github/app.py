"""The GitHub App: JWT authentication, installations, installation tokens, reads with them (githubkit).

githubkit is imported only when a client is built, never on the webhook's import path. Tests hand the
client an httpx transport through the constructor (faults at the HTTP boundary).
"""

from __future__ import annotations

import re
from chalicelib.values import mapping
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    from githubkit import GitHub

PER_PAGE = 30  # GitHub's maximum for the variables endpoints (FACTS.md §4)
MAX_PAGES = 10  # 300 variables per scope: bounded, far above any real configuration
TIMEOUT_SECONDS = 10.0
REVOKE_TIMEOUT_SECONDS = 5.0  # per attempt (three); an unused token expires within the hour anyway
RETRIES, RETRY_BACKOFF_SECONDS = 2, 0.5  # quick retries in-call; SQS redelivery is the slower outer loop
CONFIRMED_LIMIT = 1024  # installations whose account this container has confirmed (bounded memory)


class InstallationUnavailable(Exception):
    """GitHub refuses this installation for good (uninstalled, suspended, repository or permission not granted)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class InstallationToken:
    """A minted installation token; the value never appears in repr or logs."""

    value: str = field(repr=False)
    expires_at: str


def _retry_policy() -> Callable[[Any, int], Any]:
    """Retry 5xx and timeouts twice with a short backoff; SQS redelivery is the outer, slower loop."""
    from githubkit.exception import RequestFailed, RequestTimeout
    from githubkit.typing import RetryOption

    def decide(exc: Any, count: int) -> Any:
        transient = isinstance(exc, RequestTimeout) or (
            isinstance(exc, RequestFailed) and exc.response.status_code >= 500
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
    """The App: JWT-authenticated token minting, and reads made with installation tokens."""

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
                                              f"{installation_id} ({_message(exc)}); check that the installation "
                                              "includes the repository and accepted the App's permissions") from None
            raise
        data = response.json()  # not parsed_data: the model would drop permission names too
        return InstallationToken(value=str(data["token"]), expires_at=str(data.get("expires_at", "")))

    def variables(self, token: InstallationToken, owner: str, repository: str | None,
                  organization: bool) -> dict[str, str]:
        """Read Actions variables: repository over organization-shared; organization ones without a repository."""
        github = _client(token.value, self.api_url, self.transport)
        if repository is not None:
            shared = self._pages(github, f"/repos/{owner}/{repository}/actions/organization-variables",
                                 missing_ok=True)
            return {**shared, **self._pages(github, f"/repos/{owner}/{repository}/actions/variables")}
        if organization:
            return self._pages(github, f"/orgs/{owner}/actions/variables")
        return {}  # a user account has no organization variables

    def as_app(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call GitHub with the App JWT (redeliver_failed, reconcile); 4xx/5xx raise githubkit's RequestFailed."""
        # No params at all for a Link URL: httpx would replace its query string (the cursor) with an empty one.
        return self._app.request(method, path, params=dict(params) if params else None)

    def revoke(self, token: InstallationToken) -> str:
        """DELETE /installation/token with the token itself; "revoked" or "already invalid" (FACTS.md §2)."""
        from chalicelib.build import revoke_token as revoke

        return revoke.revoke(token.value, self.api_url, timeout=REVOKE_TIMEOUT_SECONDS)

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
                        f"{_message(exc)}); the App needs actions_variables / organization_actions_variables: read"
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


def rate_limited(exc: Any) -> bool:
    """Tell whether a failed GitHub response is a rate limit (transient, so raised), not a refusal."""
    # docs.github.com rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit: primary and
    # secondary limits answer 403 or 429, with `x-ratelimit-remaining: 0` or `retry-after`, or only a message
    # naming the secondary rate limit (githubkit raises its RateLimitExceeded for the first two only).
    from githubkit.exception import RateLimitExceeded

    if isinstance(exc, RateLimitExceeded):
        return True
    response = exc.response
    if response.status_code == 429:
        return True
    if response.status_code != 403:
        return False
    headers = response.headers
    return ("retry-after" in headers or headers.get("x-ratelimit-remaining") == "0"
            or "rate limit" in _message(exc).lower())


def _message(exc: Any) -> str:
    """Return GitHub's error message from a failed response (GitHub's own text, never a credential)."""
    try:
        message = exc.response.json().get("message", "")
    except Exception:
        message = ""
    return re.sub(r"\s+", " ", str(message))[:200]

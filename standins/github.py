"""A local GitHub REST API stand-in: a real HTTP server on 127.0.0.1 for tests and the demo.

Usage::

    with GitHubStandIn(app_id=4242) as gh:          # starts on a free port; gh.url = "http://127.0.0.1:PORT"
        gh.private_key_pem                          # the App's PEM (generated unless private_key_pem= given)
        gh.add_installation(7, "Octo-Org", 1001)    # target_type="Organization", repositories=None (= all),
                                                    # permissions=DEFAULT_PERMISSIONS, suspended=False
        gh.set_repo_variables("octo-org", "app", {"GHCR2ECR_TAGS": "v*"})
        gh.set_org_variable("octo-org", "GHCR2ECR_ENABLED", "true", visibility="all")  # or "selected",
                                                    # selected_repositories=["app"]
        gh.add_manifest_code("abc", {"id": 1, "pem": "...", ...})  # one-time POST /app-manifests/abc/conversions
        gh.inject("/app/installations/7/access_tokens", status=502, count=2)  # next 2 matching requests → 502
        gh.inject("/app/installations/*", delay=5.0)                       # next request sleeps 5 s first
        gh.inject("/repos/*", status=403, message="You have exceeded a secondary rate limit",
                  headers={"Retry-After": "60"})                           # a rate limit, as GitHub sends it
        gh.requests   # [RecordedRequest(method, path, query, body, auth)]: auth is only the kind:
                      # "jwt" | "token" | "basic" | "none" | "other"; the header value is never kept
        gh.tokens     # [MintedToken(value, installation_id, repositories, permissions, revoked)]
        gh.token(value)  # the MintedToken with that value, or None (e.g. `.revoked` after the build)
        gh.suspend_installation(7); gh.remove_installation(7); gh.clear_requests()

Endpoints (paths match GitHub's; errors are JSON `{"message": ...}` like GitHub's):
- `GET /app`, `GET /app/installations/{id}`, `POST /app/installations/{id}/access_tokens`,
  `GET /users/{login}/installation` and `GET /orgs/{org}/installation` (App JWT; 404 when not installed)
  (`repositories`, `repository_ids` ignored, `permissions`): App JWT (RS256, `iss` = App id or client id,
  `exp` at most 10 minutes ahead). Unknown installation 404; suspended 403; a repository the installation
  cannot see, or a permission it was not granted, 422. Tokens are `ghs_...` of variable length (some in
  the ~520-character `ghs_<APPID>_<JWT>` shape of FACTS.md §2), valid 1 hour.
- `GET /repos/{o}/{r}/actions/variables`, `GET /repos/{o}/{r}/actions/organization-variables` (need the
  token permission `actions_variables`), `GET /orgs/{org}/actions/variables` (needs
  `organization_actions_variables`): `per_page` (max 30, default 10) / `page`, `Link: rel="next"`.
  A token scoped to other repositories, or of another account, gets 404.
- `DELETE /installation/token`: revokes the token that authenticates it (204); unknown/revoked 401.
- `POST /app-manifests/{code}/conversions`: no auth; the configured result once (201), then 404.
- `GET /app/installations` (App JWT; `per_page`/`page`, Link rel="next").
- `GET /app/hook/deliveries`, `POST /app/hook/deliveries/{id}/attempts` (App JWT): `gh.hooks`, see
  standins.github_hooks.
- Check runs and artifact storage records (`gh.check_runs`, `gh.storage_records`, each write with the token
  that made it): standins.github_checks.

The HTTP handler and the JSON shapes live in standins.github_wire.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from standins.github_hooks import HookDeliveries
from standins import github_checks
from standins.github_checks import CheckRun, StorageRecordWrite
from standins.loopback import LoopbackServer
from standins.github_wire import (
    DEFAULT_PERMISSIONS, Handler, Installation, MintedToken, RecordedRequest, Reply, installation_json, iso, page,
    token_value, variable_json,
)

__all__ = ["DEFAULT_PERMISSIONS", "GitHubStandIn", "Installation", "MintedToken", "RecordedRequest", "Reply"]
JWT_MAX_LIFETIME = 600  # GitHub: "exp" no more than 10 minutes into the future


@dataclass
class _Fault:
    """An injected failure: requests matching `pattern` wait `delay` s, then get `status` with `message`."""

    pattern: str
    method: str | None
    status: int
    delay: float
    remaining: int
    message: str = "injected failure"
    headers: dict[str, str] | None = None


class GitHubStandIn(LoopbackServer):
    """The GitHub API for one App; see the module docstring."""

    thread_name = "github-standin"

    def __init__(self, app_id: int = 4242, private_key_pem: str | None = None, client_id: str = "Iv1.standin") -> None:
        super().__init__()
        if private_key_pem is None:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            private_key_pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode()
        self.app_id, self.client_id, self.private_key_pem = app_id, client_id, private_key_pem
        private_key = serialization.load_pem_private_key(private_key_pem.encode(), None)
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError("a GitHub App's private key is an RSA key (its JWTs are RS256)")
        self.public_key = private_key.public_key()
        self.installations: dict[int, Installation] = {}
        self.repo_variables: dict[tuple[str, str], dict[str, str]] = {}
        self.org_variables: dict[str, dict[str, tuple[str, str, list[str]]]] = {}
        self.tokens: list[MintedToken] = []
        self.requests: list[RecordedRequest] = []
        self._manifests: dict[str, dict[str, Any]] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self.hooks = HookDeliveries()  # the App's webhook deliveries (standins.github_hooks)
        self.check_runs: dict[int, CheckRun] = {}  # reporting endpoints: standins.github_checks
        self.storage_records: list[StorageRecordWrite] = []

    # -- lifecycle ------------------------------------------------------------------------------------
    def handler_class(self) -> type[Handler]:
        """Return the wire handler bound to this stand-in."""
        return type("Handler", (Handler,), {"standin": self})

    # -- configuration --------------------------------------------------------------------------------
    def add_installation(self, installation_id: int, login: str, account_id: int, **kwargs: Any) -> Installation:
        """Install the App on an account (kwargs: target_type, repositories, permissions, suspended)."""
        with self._lock:
            self.installations[installation_id] = Installation(installation_id, login, account_id, **kwargs)
            return self.installations[installation_id]

    def suspend_installation(self, installation_id: int, suspended: bool = True) -> None:
        """Suspend (or unsuspend) an installation."""
        with self._lock:
            self.installations[installation_id].suspended = suspended

    def remove_installation(self, installation_id: int) -> None:
        """Uninstall the App from an account."""
        with self._lock:
            self.installations.pop(installation_id, None)

    def set_repo_variables(self, owner: str, repo: str, variables: dict[str, str]) -> None:
        """Replace a repository's Actions variables (names stored upper-case, as GitHub does)."""
        with self._lock:
            self.repo_variables[(owner.lower(), repo.lower())] = {k.upper(): v for k, v in variables.items()}

    def set_org_variable(self, org: str, name: str, value: str, visibility: str = "all",
                         selected_repositories: list[str] | None = None) -> None:
        """Set one organization variable; `visibility` all | private | selected."""
        with self._lock:
            self.org_variables.setdefault(org.lower(), {})[name.upper()] = (
                value, visibility, [r.lower() for r in selected_repositories or []]
            )

    def add_manifest_code(self, code: str, result: dict[str, Any]) -> None:
        """Make `POST /app-manifests/{code}/conversions` answer `result` once."""
        with self._lock:
            self._manifests[code] = result

    def inject(self, path: str, *, status: int = 502, count: int = 1, delay: float = 0.0,
               method: str | None = None, message: str = "injected failure",
               headers: dict[str, str] | None = None) -> None:
        """Make the next `count` requests whose path matches the glob `path` wait `delay` s, then fail."""
        with self._lock:
            self._faults.append(_Fault(path, method, status, delay, count, message, headers))

    def clear_requests(self) -> None:
        """Forget recorded requests."""
        with self._lock:
            self.requests.clear()

    def token(self, value: str) -> MintedToken | None:
        """Find a minted token by value."""
        with self._lock:
            return next((t for t in self.tokens if t.value == value), None)

    # -- request handling -----------------------------------------------------------------------------
    def _fault_for(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fnmatch.fnmatchcase(path, fault.pattern) and fault.method in (None, method):
                    fault.remaining -= 1
                    return fault
        return None

    def _app_auth(self, authorization: str) -> None:
        """Verify the App JWT: RS256 with the App key, iss = App id or client id, exp ≤ 10 min ahead."""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or value.count(".") != 2:
            raise Reply(401, {"message": "A JSON web token could not be decoded"})
        try:
            claims = jwt.decode(value, self.public_key, algorithms=["RS256"],
                                options={"require": ["iat", "exp", "iss"], "verify_iat": False})
        except jwt.PyJWTError as exc:
            raise Reply(401, {"message": f"A JSON web token could not be decoded ({type(exc).__name__})"}) from None
        if str(claims["iss"]) not in (str(self.app_id), self.client_id):
            raise Reply(401, {"message": "'Issuer' claim ('iss') must be an Integer"})
        if claims["exp"] > time.time() + JWT_MAX_LIFETIME + 5:  # 5 s of clock slack
            raise Reply(401, {"message": "'Expiration time' claim ('exp') is too far in the future"})

    def _token_auth(self, authorization: str) -> MintedToken:
        scheme, _, value = authorization.partition(" ")
        token = self.token(value) if scheme.lower() in ("token", "bearer") else None
        if token is None or token.revoked or token.expires < time.time():
            raise Reply(401, {"message": "Bad credentials"})
        return token

    def _installation(self, installation_id: str) -> Installation:
        inst = self.installations.get(int(installation_id)) if installation_id.isdigit() else None
        if inst is None:
            raise Reply(404, {"message": "Not Found"})
        return inst

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any, authorization: str) -> Reply:
        """Route one request to its endpoint; every answer is a Reply."""
        parts = [p for p in path.split("/") if p]
        with self._lock:
            match method, parts:
                case "GET", ["app"]:
                    self._app_auth(authorization)
                    return Reply(200, {"id": self.app_id, "slug": "ghcr2ecr", "client_id": self.client_id})
                case "GET", ["app", "installations", iid]:
                    self._app_auth(authorization)
                    return Reply(200, installation_json(self._installation(iid), self.app_id))
                case "GET", ["users" | "orgs" as kind, login, "installation"]:
                    self._app_auth(authorization)
                    return self._installation_on(kind, login)
                case "POST", ["app", "installations", iid, "access_tokens"]:
                    self._app_auth(authorization)
                    return self._mint(self._installation(iid), body if isinstance(body, dict) else {})
                case "GET", ["repos", owner, repo, "actions", "variables" | "organization-variables" as kind]:
                    token = self._token_auth(authorization)
                    self._check_scope(token, owner, repo, "actions_variables")
                    if kind == "variables":
                        names = self.repo_variables.get((owner.lower(), repo.lower()), {})
                        return page([variable_json(k, v) for k, v in sorted(names.items())], query, self.url + path)
                    org = self.org_variables.get(owner.lower(), {})
                    shared = [variable_json(k, v) for k, (v, vis, sel) in sorted(org.items())
                              if vis != "selected" or repo.lower() in sel]
                    return page(shared, query, self.url + path)
                case "GET", ["orgs", org, "actions", "variables"]:
                    token = self._token_auth(authorization)
                    self._check_scope(token, org, None, "organization_actions_variables")
                    if self.installations[token.installation_id].target_type != "Organization":
                        raise Reply(404, {"message": "Not Found"})
                    found = self.org_variables.get(org.lower(), {})
                    return page([variable_json(k, v) | {"visibility": vis} for k, (v, vis, _) in sorted(found.items())],
                                 query, self.url + path)
                case "DELETE", ["installation", "token"]:
                    self._token_auth(authorization).revoked = True
                    return Reply(204)
                case ("GET", ["app", "hook", "deliveries"]) | ("POST", ["app", "hook", "deliveries", _, "attempts"]):
                    self._app_auth(authorization)
                    return self._hooks(method, parts, query, path)
                case "GET", ["app", "installations"]:
                    self._app_auth(authorization)
                    return self._installations_page(query, path)
                case "POST", ["app-manifests", code, "conversions"]:
                    if code not in self._manifests:
                        raise Reply(404, {"message": "Not Found"})
                    return Reply(201, self._manifests.pop(code))
            answer = github_checks.route(self, method, parts, body, authorization)
            if answer is not None:
                return answer
        raise Reply(404, {"message": "Not Found"})

    def _installation_on(self, kind: str, login: str) -> Reply:
        """GET /users/{login}/installation (any account) or /orgs/{org}/installation: the App's installation there."""
        for inst in self.installations.values():
            if inst.login.lower() == login.lower() and (kind == "users" or inst.target_type == "Organization"):
                return Reply(200, installation_json(inst, self.app_id))
        raise Reply(404, {"message": "Not Found"})

    def _hooks(self, method: str, parts: list[str], query: dict[str, list[str]], path: str) -> Reply:
        """The App's webhook deliveries: list them, or ask for one's redelivery (standins.github_hooks)."""
        status, body, headers = (self.hooks.list(query, self.url + path) if method == "GET"
                                 else self.hooks.redeliver(parts[3]))  # a refusal raises Reply
        return Reply(status, body, headers)

    def _installations_page(self, query: dict[str, list[str]], path: str) -> Reply:
        """GET /app/installations: `per_page` (max 100, default 30) / `page`, Link rel="next"."""
        try:
            per_page = min(max(int(query.get("per_page", ["30"])[0]), 1), 100)
            number = max(int(query.get("page", ["1"])[0]), 1)
        except ValueError:
            raise Reply(422, {"message": "Invalid pagination"}) from None
        everything = [installation_json(i, self.app_id) for _, i in sorted(self.installations.items())]
        headers = {}
        if number * per_page < len(everything):
            headers["Link"] = f'<{self.url}{path}?per_page={per_page}&page={number + 1}>; rel="next"'
        return Reply(200, everything[(number - 1) * per_page: number * per_page], headers)

    def _mint(self, inst: Installation, body: dict[str, Any]) -> Reply:
        if inst.suspended:
            raise Reply(403, {"message": "This installation has been suspended"})
        repos = body.get("repositories")
        if repos is not None and (not isinstance(repos, list) or not all(isinstance(r, str) for r in repos)
                                  or (inst.repositories is not None
                                      and not {r.lower() for r in repos} <= {r.lower() for r in inst.repositories})):
            raise Reply(422, {"message": "There is at least one repository that does not exist or is not "
                                         "accessible to the parent installation."})
        wanted = body.get("permissions") or dict(inst.permissions)
        if not isinstance(wanted, dict) or any(
            inst.permissions.get(name) not in (level, "write") for name, level in wanted.items()
        ):
            raise Reply(422, {"message": "The permissions requested are not granted to this installation."})
        value = token_value(self.app_id, len(self.tokens))
        expires = time.time() + 3600
        self.tokens.append(MintedToken(value, inst.id, repos, dict(wanted), expires))
        answer: dict[str, Any] = {
            "token": value, "expires_at": iso(expires), "permissions": wanted,
            "repository_selection": "selected" if repos is not None or inst.repositories is not None else "all",
        }
        if repos is not None:
            answer["repositories"] = [{"name": r, "full_name": f"{inst.login}/{r}"} for r in repos]
        return Reply(201, answer)

    def _check_scope(self, token: MintedToken, owner: str, repo: str | None, permission: str) -> None:
        inst = self.installations.get(token.installation_id)
        if inst is None or inst.login.lower() != owner.lower():
            raise Reply(404, {"message": "Not Found"})
        if repo is not None:
            visible = token.repositories if token.repositories is not None else inst.repositories
            if visible is not None and repo.lower() not in {r.lower() for r in visible}:
                raise Reply(404, {"message": "Not Found"})
        if permission not in token.permissions:
            raise Reply(403, {"message": "Resource not accessible by integration"})

"""The two registries ghcr2ecr copies between, as local stand-ins with the credentials each one knows."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Self

from standins import skopeo
from standins.images import Manifest
from standins.push import PushedImage, push
from standins.registry import BasicAuth, RegistryProcess, TokenAuth
from standins.tokens import PULL, PULL_PUSH, Credential, Principal, TokenPolicy, TokenRequest, TokenServer

PUBLIC_PREFIX = "public/"


@dataclass
class _Standin:
    """A registry process on loopback, stopped with the stand-in."""

    registry: RegistryProcess

    @property
    def host(self) -> str:
        """Return `127.0.0.1:PORT` of the registry."""
        return self.registry.host

    @property
    def url(self) -> str:
        """Return `http://127.0.0.1:PORT` of the registry."""
        return self.registry.url

    def stop(self) -> None:
        """Stop the registry."""
        self.registry.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class GhcrStandin(_Standin):
    """A token-auth registry behaving like ghcr.io for the credentials ghcr2ecr meets there.

    - `pusher`: pull+push on every repository (what CI uses to publish; tests push with it);
    - `app_token`: username `x-access-token`; logs in, but gets `denied` pulling anything outside
      `public/` (an App installation token on ghcr.io today, FACTS.md §3);
    - `fallback`: a classic-PAT-like read credential: pull on every repository;
    - anonymous: pull on repositories named `public/...` only;
    - `job_token(owner_glob)`: username `x-access-token`; pulls the private packages the glob names (a job's
      `GITHUB_TOKEN` with `packages: read`, FACTS.md §12) until `end_job`.
    """

    tokens: TokenServer
    pusher: Credential
    app_token: Credential
    fallback: Credential
    public_prefix: str = PUBLIC_PREFIX

    def token_requests(self, repository: str) -> list[TokenRequest]:
        """Return the token requests (username, scopes, granted, status) that named `repository`."""
        return self.tokens.requests_for(repository)

    def usernames_tried(self, repository: str) -> list[str | None]:
        """Return, in order, the usernames (None for anonymous) that asked for a token for `repository`."""
        return [r.username for r in self.token_requests(repository)]

    def job_token(self, owner_glob: str) -> Credential:
        """Register a job's `GITHUB_TOKEN`: pull on the repositories `owner_glob` names (`octo-org/*`) and `public/`."""
        credential = Credential("x-access-token", "ghs_job_" + secrets.token_hex(16))
        grants = {owner_glob: PULL, self.public_prefix + "*": PULL}
        self.tokens.policy.principals.append(Principal(credential, grants))
        return credential

    def end_job(self, credential: Credential) -> None:
        """Forget a job token, as GHCR does once its job has ended (FACTS.md §12)."""
        policy = self.tokens.policy
        policy.principals = [p for p in policy.principals if p.credential != credential]

    def stop(self) -> None:
        """Stop the registry and the token server."""
        super().stop()
        self.tokens.stop()


@dataclass
class EcrStandin(_Standin):
    """A Basic-auth (htpasswd, bcrypt) registry standing in for ECR's `AWS:<password>` login."""

    credential: Credential = field(default_factory=lambda: Credential("AWS", "ecr-" + secrets.token_hex(8)))


def start_ghcr(workdir: Path, name: str = "ghcr") -> GhcrStandin:
    """Start a token server and a token-auth registry with the pusher, app-token and fallback credentials."""
    pusher = Credential("pusher", "ghp_pusher_" + secrets.token_hex(8))
    app_token = Credential("x-access-token", "ghs_app_" + secrets.token_hex(16))
    fallback = Credential("fallback-reader", "ghp_fallback_" + secrets.token_hex(8))
    policy = TokenPolicy(
        anonymous={PUBLIC_PREFIX + "*": PULL},
        principals=[
            Principal(pusher, {"*": PULL_PUSH}),
            Principal(app_token, {PUBLIC_PREFIX + "*": PULL}),
            Principal(fallback, {"*": PULL}),
        ],
    )
    tokens = TokenServer(policy).start()
    try:
        registry = RegistryProcess(workdir, TokenAuth(tokens), name).start()
    except BaseException:
        tokens.stop()
        raise
    return GhcrStandin(registry, tokens, pusher, app_token, fallback)


def start_ecr(workdir: Path, name: str = "ecr") -> EcrStandin:
    """Start a Basic-auth registry whose only user is `AWS` with a random password."""
    credential = Credential("AWS", "ecr-" + secrets.token_hex(8))
    registry = RegistryProcess(workdir, BasicAuth((credential,)), name).start()
    return EcrStandin(registry, credential)


Target = GhcrStandin | EcrStandin | RegistryProcess


def push_credential(target: Target) -> Credential | None:
    """Return the credential that may push to a stand-in (None for an anonymous registry)."""
    if isinstance(target, GhcrStandin):
        return target.pusher
    if isinstance(target, EcrStandin):
        return target.credential
    return None


def push_to(target: Target, repository: str, manifest: Manifest, tags: Sequence[str] = ("v1",), *,
            via: Literal["http", "skopeo"] = "http", workdir: Path | None = None) -> PushedImage:
    """Push a manifest tree to a stand-in with its push credential, over the tiny client or with skopeo."""
    credential = push_credential(target)
    if via == "http":
        return push(manifest, target.url, repository, tags, credential)
    if workdir is None:
        raise ValueError("pushing with skopeo needs a workdir for the image layout")
    layout = workdir / f"layout-{manifest.digest.split(':')[1][:16]}"
    tags = tuple(tags) or ("latest",)  # skopeo pushes to a tag
    for tag in tags:
        skopeo.push_layout(manifest, layout, f"{target.host}/{repository}:{tag}", credential)
    return PushedImage(target.host, repository, manifest, tags)

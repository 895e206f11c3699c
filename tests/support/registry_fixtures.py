"""Fixtures for real local registries: a GHCR stand-in, an ECR stand-in, a plain registry, fault proxies, images.

Registries are real `docker-registry` processes on 127.0.0.1, started once per session; tests keep apart
by using a fresh repository name (`repo_name`, `public_repo_name`, `new_repo_name`). When docker-registry
or skopeo is missing, tests using these fixtures are skipped, or fail when `CI` is set.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from standins.ghcr_ecr import PUBLIC_PREFIX, EcrStandin, GhcrStandin, start_ecr, start_ghcr
from standins.registry import RegistryProcess, registry_binary

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def registry_tools() -> None:
    """Require docker-registry and skopeo: skip without them, or fail when `CI` is set."""
    missing = [name for name, found in (("docker-registry", registry_binary()), ("skopeo", shutil.which("skopeo")))
               if not found]
    if missing:
        message = f"{' and '.join(missing)} not installed: apt-get install -y docker-registry skopeo"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def registries_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the session's directory holding registry configs, logs and storage."""
    return tmp_path_factory.mktemp("registries")


@pytest.fixture(scope="session")
def ghcr(registry_tools: None, registries_dir: Path) -> Iterator[GhcrStandin]:
    """The GHCR stand-in: a token-auth registry and its token server (session-wide).

    Attributes: `host` ("127.0.0.1:PORT"), `url` ("http://127.0.0.1:PORT"), `registry`
    (RegistryProcess), `tokens` (TokenServer: `.realm`, `.service`, `.requests`), and credentials
    (`Credential(username, password)`, `.basic()` gives a header value):
    `pusher` (pull+push everywhere), `app_token` (user `x-access-token`; logs in but is `denied`
    pull outside `public/`, like an App token on ghcr.io), `fallback` (pull everywhere, like a PAT).
    Anonymous pulls only `public/...` repositories (`public_prefix`).
    `token_requests(repo)` / `usernames_tried(repo)` tell which credentials asked for that repository.
    """
    standin = start_ghcr(registries_dir)
    yield standin
    standin.stop()


@pytest.fixture(scope="session")
def ecr(registry_tools: None, registries_dir: Path) -> Iterator[EcrStandin]:
    """The ECR stand-in: an htpasswd Basic-auth registry (session-wide).

    Attributes: `host`, `url`, `registry`, `credential` (`Credential("AWS", password)`).
    It does not need repositories created first (real ECR does: FACTS.md §8).
    """
    standin = start_ecr(registries_dir)
    yield standin
    standin.stop()


@pytest.fixture(scope="session")
def plain_registry(registry_tools: None, registries_dir: Path) -> Iterator[RegistryProcess]:
    """A registry without auth (session-wide). Attributes: `host`, `url`, `storage`, `log_path`."""
    with RegistryProcess(registries_dir, None, "plain") as registry:
        yield registry


@pytest.fixture
def new_repo_name(request: pytest.FixtureRequest) -> Callable[..., str]:
    """Return a factory `new_repo_name(prefix="it") -> "it/<test-name>-<n><hex>"`, unique per call."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-") or "test"

    def make(prefix: str = "it") -> str:
        return f"{prefix.strip('/')}/{slug}-{next(_counter)}{secrets.token_hex(2)}"

    return make


@pytest.fixture
def repo_name(new_repo_name: Callable[..., str]) -> str:
    """A fresh private repository name, e.g. `it/test-copy-index-7a1f3`."""
    return new_repo_name("it")


@pytest.fixture
def public_repo_name(new_repo_name: Callable[..., str]) -> str:
    """A fresh repository name under `public/`, which anonymous and the app token may pull on the GHCR stand-in."""
    return new_repo_name(PUBLIC_PREFIX)

"""Fixtures for real local registries: a GHCR stand-in, an ECR stand-in, a plain registry, fault proxies, images.

Registries are real `docker-registry` processes on 127.0.0.1, started once per session; tests keep apart
by using a fresh repository name (`repo_name`, `public_repo_name`, `new_repo_name`). Every test that uses
them carries the `registry` marker (checked at collection). When docker-registry or skopeo is missing and
such a test is selected, the run stops at once with one line saying what to install: a real part is never
skipped silently. `pytest -m "not registry"` deselects them explicitly.
"""

from __future__ import annotations

import itertools
import re
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from standins import images
from standins.faults import FaultProxy
from standins.ghcr_ecr import PUBLIC_PREFIX, EcrStandin, GhcrStandin, Target, push_to, start_ecr, start_ghcr
from standins.images import Manifest
from standins.push import PushedImage
from standins.registry import RegistryProcess, registry_binary

_counter = itertools.count(1)


def missing_tools() -> list[str]:
    """Return which of docker-registry and skopeo are not on PATH."""
    return [name for name, found in (("docker-registry", registry_binary()), ("skopeo", shutil.which("skopeo")))
            if not found]


def missing_tools_message(missing: Sequence[str]) -> str:
    """Return the one line that says what to install."""
    return (f"{' and '.join(missing)} not installed, needed by the tests marked `registry`: "
            "apt-get install -y docker-registry skopeo (or deselect them: pytest -m 'not registry')")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Require the `registry` marker on every test using a real registry; stop when the tools are missing."""
    unmarked = [item.nodeid for item in items
                if "registry_tools" in getattr(item, "fixturenames", ())
                and item.get_closest_marker("registry") is None]
    if unmarked:
        raise pytest.UsageError(f"tests using real registries lack @pytest.mark.registry: {', '.join(unmarked[:5])}")
    if any(item.get_closest_marker("registry") for item in items):
        missing = missing_tools()
        if missing:
            raise pytest.UsageError(missing_tools_message(missing))


@pytest.fixture(scope="session")
def registry_tools() -> None:
    """Require docker-registry and skopeo (a failure, never a skip: see the module docstring)."""
    missing = missing_tools()
    if missing:
        pytest.fail(missing_tools_message(missing))


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


@pytest.fixture
def fault_proxy() -> Iterator[Callable[[Target | str], FaultProxy]]:
    """Return a factory `fault_proxy(target) -> FaultProxy` started in front of a stand-in (or a URL).

    For the GHCR stand-in the proxy also fronts the token server (WWW-Authenticate realms are rewritten),
    so token requests are counted too. The proxy's `host`/`url` replace the target's in references.
    Faults (each matched by method or None, and a path regex; `count` uses, -1 for always):
    `fail(m, path, status=500)`, `throttle(m, path)` (429 + `Retry-After: 1`),
    `drop(m, path, after_bytes=N)` (2xx body cut after N bytes), `corrupt(m, path, offset=None)`
    (one byte flipped in a 2xx body), `hang_up(m, path)` (no answer), `down()`/`up()`, `clear()`, `stop()`.
    Counting: `traffic.total`, `traffic.count(kind, method)` with kinds token/ping/manifest/blob/upload/tags,
    `traffic.blob_bytes` (body bytes of blob GETs), `reset_traffic()`.
    """
    started: list[FaultProxy] = []

    def make(target: Target | str) -> FaultProxy:
        if isinstance(target, str):
            proxy = FaultProxy(target)
        else:
            tokens = target.tokens.url if isinstance(target, GhcrStandin) else None
            proxy = FaultProxy(target.url, tokens)
        started.append(proxy.start())
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture
def push_image(tmp_path: Path) -> Callable[..., PushedImage]:
    """Return `push_image(target, repository, manifest, tags=("v1",), via="http"|"skopeo") -> PushedImage`.

    `target` is `ghcr` (pushes as `ghcr.pusher`), `ecr` or `plain_registry`; build `manifest` with
    `standins.images` (multi_platform_index, docker_manifest_list, single_image, large_image,
    cosign_signature + signature_tag, artifact). PushedImage has `host`, `repository`, `tags`, `digest`,
    `media_type`, `child_digests`, `manifest_digests` (children first), `blobs` ({digest: size}),
    `blob_bytes`, `manifest` and `ref(tag_or_digest=None)` -> "HOST/REPO:TAG".
    """

    def push_(target: Target, repository: str, manifest: Manifest, tags: Sequence[str] = ("v1",),
              via: str = "http") -> PushedImage:
        return push_to(target, repository, manifest, tags, via=via, workdir=tmp_path)  # type: ignore[arg-type]

    return push_


@pytest.fixture
def pushed_index(ghcr: GhcrStandin, repo_name: str, push_image: Callable[..., PushedImage]) -> PushedImage:
    """A 3-platform OCI index (shared base layers) pushed to the GHCR stand-in at `repo_name:v1` (private)."""
    return push_image(ghcr, repo_name, images.multi_platform_index(seed=repo_name), ("v1",))


@pytest.fixture
def pushed_manifest_list(ghcr: GhcrStandin, repo_name: str, push_image: Callable[..., PushedImage]) -> PushedImage:
    """A 3-platform Docker manifest list pushed to the GHCR stand-in at `repo_name:v1` (private)."""
    return push_image(ghcr, repo_name, images.docker_manifest_list(seed=repo_name), ("v1",))

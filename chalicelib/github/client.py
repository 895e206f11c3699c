"""This container's one App client: built on first use, rebuilt when the private key in SSM changes.

Every Lambda that talks to GitHub (dispatch, on_build_state, redeliver_failed, reconcile) gets its client
here; the private key is read from SSM at most every KEY_MAX_AGE seconds, so a rotated key is picked up
without a redeploy. Tests install a client of their own (`use`), e.g. one on a faulty httpx transport.
"""

from __future__ import annotations

from chalicelib import aws
from chalicelib.config import settings
from chalicelib.github.app import GitHubApp

KEY_MAX_AGE = 900  # seconds the App's private key is cached per container (docs/operators.md says so)

_apps: dict[str, GitHubApp] = {}  # private key -> its client (one entry)
_installed: list[GitHubApp] = []  # a client installed by `use`, which wins


def github_app() -> GitHubApp:
    """Return this container's App client."""
    if _installed:
        return _installed[0]
    config = settings()
    key = aws.ssm().get_secret(config.github_private_key_parameter, max_age=KEY_MAX_AGE)
    app = _apps.get(key)
    if app is None:
        _apps.clear()
        app = _apps[key] = GitHubApp(config.github_app_id, key, config.github_api_url)
    return app


def use(app: GitHubApp | None) -> None:
    """Install a client to hand out instead of building one (None: build again); tests only."""
    _installed.clear()
    if app is not None:
        _installed.append(app)


def reset() -> None:
    """Forget every client (a new environment)."""
    _apps.clear()
    _installed.clear()

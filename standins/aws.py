"""A local AWS: a moto server on 127.0.0.1 over real HTTP, and the environment that points boto3 at it.

Usage::

    with MotoServer() as url:                 # "http://127.0.0.1:PORT"
        with aws_environment(url):            # AWS_ENDPOINT_URL, dummy credentials, region (restored after)
            boto3.client("sqs").create_queue(...)
    server = MotoServer(); url = server.start(); ...; reset(url); server.stop()

`apply_aws_environment(url, env)` sets the same variables in a dict (e.g. a subprocess's env) instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.request
from collections.abc import Iterable, Iterator, MutableMapping

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account


def aws_variables(url: str, region: str = REGION) -> dict[str, str]:
    """Return the environment variables that send boto3 (and the AWS CLI) to `url` with dummy credentials."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }


def apply_aws_environment(url: str, env: MutableMapping[str, str], region: str = REGION) -> None:
    """Set the AWS variables of `aws_variables` in `env`, dropping profiles that could override them."""
    env.update(aws_variables(url, region))
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        env.pop(name, None)


@contextlib.contextmanager
def restored_environ(names: Iterable[str]) -> Iterator[None]:
    """Put these variables of os.environ back as they were (set or unset) when the block ends."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def aws_environment(url: str, region: str = REGION) -> Iterator[None]:
    """Point this process's boto3 at `url` for the duration of the block, then restore the environment."""
    with restored_environ([*aws_variables(url, region), "AWS_PROFILE", "AWS_DEFAULT_PROFILE"]):
        apply_aws_environment(url, os.environ, region)
        yield


def reset(url: str) -> None:
    """Forget every resource the server holds (moto's `POST /moto-api/reset`)."""
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()


class MotoServer:
    """A moto server in a thread, bound to loopback on a free port (moto's default binds 0.0.0.0)."""

    def __init__(self) -> None:
        self._server: object | None = None
        self.url = ""

    def start(self) -> str:
        """Start the server and return its URL."""
        from moto.server import ThreadedMotoServer  # slow import: only when a server is wanted

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request otherwise
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server, self.url = server, f"http://{host}:{port}"
        return self.url

    def stop(self) -> None:
        """Stop the server."""
        if self._server is not None:
            self._server.stop()  # type: ignore[attr-defined]
            self._server = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

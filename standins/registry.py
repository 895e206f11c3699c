"""Real `docker-registry` (distribution 2.8) processes on loopback: anonymous, Basic (ECR-like) or token (GHCR-like)."""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import bcrypt
import httpx

from standins.tokens import Credential, TokenServer

START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


class RegistryError(RuntimeError):
    """A registry process could not be started."""


@dataclass(frozen=True)
class BasicAuth:
    """htpasswd (bcrypt) Basic auth, as ECR speaks it."""

    users: tuple[Credential, ...]
    realm: str = "ecr-standin"


@dataclass(frozen=True)
class TokenAuth:
    """Bearer token auth against a `TokenServer`, as ghcr.io speaks it."""

    server: TokenServer


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def registry_binary() -> str | None:
    """Return the path of `docker-registry` (or `registry`), or None when neither is installed."""
    return shutil.which("docker-registry") or shutil.which("registry")


def _die_with_parent(command: list[str]) -> list[str]:
    """Prefix `setpriv --pdeathsig TERM` so the registry ends even if this process is killed outright."""
    setpriv = shutil.which("setpriv")
    # PR_SET_PDEATHSIG fires when the *thread* that started the child ends: only safe from the main thread
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return command
    return [setpriv, "--pdeathsig", "TERM", "--", *command]


class RegistryProcess:
    """One `docker-registry serve` process with filesystem storage under `workdir`."""

    def __init__(self, workdir: Path, auth: BasicAuth | TokenAuth | None = None, name: str = "registry") -> None:
        self.workdir = Path(workdir)
        self.auth = auth
        self.name = name
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """Return `127.0.0.1:PORT`, the registry's host as references name it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Return `http://127.0.0.1:PORT`."""
        return f"http://{self.host}"

    @property
    def log_path(self) -> Path:
        """Return the file the registry logs to."""
        return self.workdir / f"{self.name}.log"

    @property
    def storage(self) -> Path:
        """Return the filesystem storage root."""
        return self.workdir / f"{self.name}-storage"

    @property
    def running(self) -> bool:
        """Return whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def config(self) -> dict:
        """Return the registry configuration (written as JSON, which is YAML)."""
        config: dict = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}, "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
            "health": {"storagedriver": {"enabled": False}},
        }
        if isinstance(self.auth, BasicAuth):
            htpasswd = self.workdir / f"{self.name}.htpasswd"
            # distribution only accepts bcrypt entries; cost 4 keeps every request cheap
            htpasswd.write_text("".join(
                f"{u.username}:{bcrypt.hashpw(u.password.encode(), bcrypt.gensalt(4)).decode()}\n"
                for u in self.auth.users))
            config["auth"] = {"htpasswd": {"realm": self.auth.realm, "path": str(htpasswd)}}
        elif isinstance(self.auth, TokenAuth):
            server = self.auth.server
            bundle = server.signer.write_bundle(self.workdir / f"{self.name}-token-ca.pem")
            config["auth"] = {"token": {"realm": server.realm, "service": server.service,
                                        "issuer": server.signer.issuer, "rootcertbundle": str(bundle)}}
        return config

    def start(self) -> Self:
        """Start the process on a free port and wait until `/v2/` answers."""
        binary = registry_binary()
        if binary is None:
            raise RegistryError("docker-registry is not installed (apt-get install docker-registry)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        last = ""
        for _ in range(3):  # a free port can be taken between probing and binding: retry
            self.port = free_port()
            config_path = self.workdir / f"{self.name}.yml"
            config_path.write_text(json.dumps(self.config(), indent=2))
            env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
            with open(self.log_path, "ab") as log:
                self._process = subprocess.Popen(_die_with_parent([binary, "serve", str(config_path)]), stdout=log,
                                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                 env=env, start_new_session=True)
            _live.add(self)
            if self._wait_ready():
                return self
            last = self.log_path.read_text(errors="replace")[-2000:]
            self.stop()
        raise RegistryError(f"docker-registry {self.name} did not start; log tail:\n{last}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.running:
                return False
            try:
                status = httpx.get(self.url + "/v2/", timeout=1.0).status_code
                if status in (200, 401):
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Terminate the process group (SIGTERM, then SIGKILL) and reap it."""
        process, self._process = self._process, None
        _live.discard(self)
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RegistryProcess({self.name!r}, {self.url}, auth={type(self.auth).__name__})"


_live: set[RegistryProcess] = set()


@atexit.register
def _stop_all() -> None:
    for process in list(_live):
        process.stop()

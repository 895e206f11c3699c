"""Stand-ins for the runner's ID-token service and a deployment's hand-off routes; the script run as a runner would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTION_YML = ROOT / "action.yml"
SCRIPT = ROOT / "action" / "handoff.py"

REQUEST_TOKEN = "rt-7Hq2-request-token-only-for-the-runner"
JOB_TOKEN = "ghs_jobTokenForOneCopy0123456789abcdef"
DIGEST = "sha256:" + "ab" * 32
IMAGE = "ghcr.io/acme/app@" + DIGEST
ECR_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ghcr/acme/app@" + DIGEST
TOKEN_PATH = "/_apis/oidc/token"  # the runner's: ACTIONS_ID_TOKEN_REQUEST_URL carries ?api-version=2.0


@dataclass
class Seen:
    """One request as the stand-in received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def bearer(self) -> str:
        """The request's bearer token, or empty."""
        return self.headers.get("authorization", "").removeprefix("Bearer ")


@dataclass
class Reply:
    """One scripted answer."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


class StubApp:
    """The ID-token service (under /_apis/) and the deployment's API (under /api/) on 127.0.0.1.

    Scripted answers are consumed in order; the last one repeats.
    """

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.minted: list[str] = []
        self.handoff_replies = [Reply(202, {"status": "queued", "id": "h-0001"})]
        self.status_replies = [Reply(200, {"status": "succeeded", "image": ECR_IMAGE, "tags": ["v1.2.0", "latest"]})]
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = "http://127.0.0.1:%d" % self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> StubApp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        """The deployment's API base URL (Chalice's stage URLs end in a slash)."""
        return self.base + "/api/"

    @property
    def token_url(self) -> str:
        """What the runner puts in ACTIONS_ID_TOKEN_REQUEST_URL."""
        return self.base + TOKEN_PATH + "?api-version=2.0"

    def to_app(self) -> list[Seen]:
        """Every request sent to the deployment."""
        return [seen for seen in self.seen if seen.path.startswith("/api/")]

    def posts(self) -> list[Seen]:
        """The hand-off requests."""
        return [seen for seen in self.seen if seen.method == "POST" and seen.path == "/api/github/handoff"]

    def polls(self) -> list[Seen]:
        """The status requests."""
        return [seen for seen in self.seen if seen.method == "GET" and seen.path.startswith("/api/github/handoff/")]

    def mints(self) -> list[Seen]:
        """The ID-token requests."""
        return [seen for seen in self.seen if seen.path == TOKEN_PATH]

    def _answer(self, seen: Seen) -> Reply:
        """Choose the scripted answer for a request."""
        if seen.path == TOKEN_PATH and seen.method == "GET":
            if seen.headers.get("authorization") != "Bearer " + REQUEST_TOKEN:
                return Reply(401, {"message": "bad request token"})
            token = "eyJhbGciOiJSUzI1NiJ9.eyJuIjoi%04d.c2lnbmF0dXJl%04d" % (len(self.minted), len(self.minted))
            self.minted.append(token)
            return Reply(200, {"count": len(token), "value": token})
        if seen.path == "/api/github/handoff" and seen.method == "POST":
            replies = self.handoff_replies
        elif seen.path.startswith("/api/github/handoff/") and seen.method == "GET":
            replies = self.status_replies
        else:
            return Reply(404, {"Code": "NotFoundError", "Message": "no such route"})
        return replies.pop(0) if len(replies) > 1 else replies[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        """Build the request handler bound to this stand-in."""
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen = Seen(self.command, parts.path, parse_qs(parts.query),
                            {name.lower(): value for name, value in self.headers.items()}, body)
                with stub._lock:
                    stub.seen.append(seen)
                    reply = stub._answer(seen)
                data = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                """Keep the test output quiet."""

        return Handler


@dataclass
class Step:
    """What one run of the script left behind."""

    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str

    @property
    def log(self) -> str:
        """Everything the runner would show."""
        return self.stdout + self.stderr


def action_step() -> dict[str, Any]:
    """The composite action's one step, from action.yml."""
    return yaml.safe_load(ACTION_YML.read_text())["runs"]["steps"][0]


def input_variables() -> dict[str, str]:
    """Map each input to the environment variable action.yml passes it in."""
    mapping = {}
    for variable, value in action_step()["env"].items():
        match = re.fullmatch(r"\$\{\{\s*inputs\.([A-Za-z0-9_-]+)\s*\}\}", str(value))
        assert match, "%s is not set from an input" % variable
        mapping[match.group(1)] = variable
    return mapping


def step_env(app: StubApp, tmp_path: Path, inputs: dict[str, str], id_token: bool = True) -> dict[str, str]:
    """Build the step's environment the way the runner does for action.yml, with these inputs."""
    declared = yaml.safe_load(ACTION_YML.read_text())["inputs"]
    given = {"url": app.url, "image": IMAGE, **inputs}
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "HANDOFF_SLEEP_SCALE": "0.01",
    }
    if id_token:
        env["ACTIONS_ID_TOKEN_REQUEST_URL"] = app.token_url
        env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = REQUEST_TOKEN
    for name, variable in input_variables().items():
        default = str(declared[name].get("default", "")).replace("${{ github.token }}", JOB_TOKEN)
        env[variable] = given.get(name, default)
    return env


def read_outputs(text: str) -> dict[str, str]:
    """Parse $GITHUB_OUTPUT: `name=value` lines and `name<<DELIMITER` blocks."""
    outputs, lines, index = {}, text.split("\n"), 0
    while index < len(lines):
        line = lines[index]
        if "<<" in line:
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, index + 1)
            outputs[name] = "\n".join(lines[index + 1:end])
            index = end + 1
        else:
            if line:
                name, value = line.split("=", 1)
                outputs[name] = value
            index += 1
    return outputs


def run_step(app: StubApp, tmp_path: Path, id_token: bool = True, **inputs: str) -> Step:
    """Run the script as the runner would (python3 with the standard library only) and collect its effects."""
    env = step_env(app, tmp_path, {name.replace("_", "-"): value for name, value in inputs.items()}, id_token)
    # -S: no site-packages, so the script cannot lean on anything the runner's python3 lacks.
    done = subprocess.run([sys.executable, "-S", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    output, summary = tmp_path / "output", tmp_path / "summary.md"
    return Step(done.returncode, done.stdout, done.stderr,
                read_outputs(output.read_text()) if output.exists() else {},
                summary.read_text() if summary.exists() else "")

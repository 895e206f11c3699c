"""The two ends of a sync as Transports: which credentials each end uses, read from the environment.

Source: the chain of auth.source_credentials (installation token, anonymous, fallback token).
Destination: ECR hosts (or any host with GHCR2ECR_DEST_ECR=true) log in with GetAuthorizationToken;
other hosts with GHCR2ECR_DEST_USERNAME / GHCR2ECR_DEST_PASSWORD, or anonymously.
"""

from __future__ import annotations

import functools
import os
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from chalicelib.registry import ecr, redact
from chalicelib.registry.auth import (Authenticator, Credential, allowed_realms, basic_dest_credential, handoff_build,
                                      secret_values, source_credentials)
from chalicelib.registry.limits import Limits
from chalicelib.registry.reference import Repository
from chalicelib.registry.transport import DEFAULT_TIMEOUT, RetryPolicy, Transport

SOURCE_HINT = ("make the package public, or provide a read credential: GHCR2ECR_SOURCE_FALLBACK_TOKEN "
               "(for the App: a classic PAT with read:packages in AWS Secrets Manager under "
               "ghcr2ecr/ghcr-pull/<account-id>)")
# A hand-off build's source token is the tenant job's GITHUB_TOKEN (FACTS.md §12): what it may pull is set in
# the workflow and on the package, not in AWS.
HANDOFF_HINT = ("give the job `permissions: packages: read`, and add its repository under the package's "
                "\"Manage Actions access\" on GitHub (a package first pushed with a PAT has none)")
ECR_HINT = "check that the build role may push to this ECR repository (ecr:GetAuthorizationToken, ecr:PutImage...)"
BASIC_HINT = "set GHCR2ECR_DEST_USERNAME and GHCR2ECR_DEST_PASSWORD to a credential that may push there"


class LazyCAContext(ssl.SSLContext):
    """A verifying client TLS context that loads its CA bundle at its first handshake, not when it is made.

    Loading the bundle takes 40-60 ms; a sync between plain-HTTP loopback registries never needs it, and one
    over TLS loads it once, before its first handshake. The bundle is httpx's choice: SSL_CERT_FILE, else
    SSL_CERT_DIR, else certifi's. Hostname checking and CERT_REQUIRED are PROTOCOL_TLS_CLIENT's defaults.
    """

    _lock = threading.Lock()

    def load_once(self) -> None:
        """Load the CA bundle unless it already is (thread-safe)."""
        with self._lock:
            if getattr(self, "_ca_loaded", False):
                return
            if os.environ.get("SSL_CERT_FILE"):
                self.load_verify_locations(cafile=os.environ["SSL_CERT_FILE"])
            elif os.environ.get("SSL_CERT_DIR"):
                self.load_verify_locations(capath=os.environ["SSL_CERT_DIR"])
            else:
                import certifi  # noqa: PLC0415 - only a TLS connection needs it

                self.load_verify_locations(cafile=certifi.where())
            self._ca_loaded = True

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        """Load the CA bundle, then wrap as usual (httpcore's direct TLS connections)."""
        self.load_once()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        """Load the CA bundle, then wrap as usual (httpcore's TLS through an HTTPS proxy)."""
        self.load_once()
        return super().wrap_bio(*args, **kwargs)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """The process's one TLS context, shared by every client; its CA bundle is loaded on first use."""
    return LazyCAContext(ssl.PROTOCOL_TLS_CLIENT)


def http_client(concurrency: int, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """Build an HTTP client with timeouts and a connection pool that fits the concurrency."""
    limits = httpx.Limits(max_connections=concurrency * 2 + 4, max_keepalive_connections=concurrency * 2 + 4)
    # identity: manifests and lists are small, layers are compressed already, and no answer can inflate
    return httpx.Client(timeout=DEFAULT_TIMEOUT, limits=limits, transport=transport, verify=_ssl_context(),
                        headers={"Accept-Encoding": "identity"})


def uses_ecr(dest: Repository, env: Mapping[str, str]) -> bool:
    """Tell whether the destination goes through the ECR path (an ECR host, or GHCR2ECR_DEST_ECR=true)."""
    return dest.ecr is not None or ecr.ecr_forced(env)


def ecr_client_factory(dest: Repository, client: Any = None) -> Callable[[], Any]:
    """Return a getter of one boto3 ECR client (in the destination host's region), made on first use."""
    if client is not None:
        return lambda: client
    region = dest.ecr[1] if dest.ecr else None
    made: list[Any] = []

    def get() -> Any:
        if not made:
            made.append(ecr.ecr_client(region))
        return made[0]

    return get


def source_transport(source: Repository, env: Mapping[str, str], client: httpx.Client, retry: RetryPolicy,
                     sleep: Callable[[float], None] = time.sleep) -> Transport:
    """Build the source end; raises ValueError when a credential variable or a limit is malformed."""
    redact.register(*secret_values(env))
    return Transport(source, Authenticator(source_credentials(env), realms=allowed_realms(env)),
                     role="source", hint=HANDOFF_HINT if handoff_build(env) else SOURCE_HINT,
                     retry=retry, sleep=sleep, client=client,
                     limits=Limits.from_env(env))


def dest_transport(dest: Repository, env: Mapping[str, str], client: httpx.Client, retry: RetryPolicy,
                   boto: Callable[[], Any], sleep: Callable[[float], None] = time.sleep) -> Transport:
    """Build the destination end with ECR or Basic/anonymous credentials."""
    credential: Credential
    if uses_ecr(dest, env):
        credential, hint = ecr.EcrCredential(boto, registry_id=dest.ecr[0] if dest.ecr else None), ECR_HINT
    else:
        credential, hint = basic_dest_credential(env), BASIC_HINT
    return Transport(dest, Authenticator([credential], realms=allowed_realms(env)), role="destination",
                     hint=hint, retry=retry, sleep=sleep, client=client, limits=Limits.from_env(env))

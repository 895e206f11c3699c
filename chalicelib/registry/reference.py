"""Repository references (`HOST[:PORT]/REPOSITORY`, optional `http://` for loopback) and digests."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# The OCI grammar, exported for every module that checks a tag, digest or repository (use `fullmatch`).
# distribution/reference grammar: path components joined by '/', each [a-z0-9]+ with separators . _ __ -
REPOSITORY_PATTERN = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # distribution spec, tag grammar
DIGEST_PATTERN = re.compile(r"sha256:[a-f0-9]{64}")  # the only algorithm this copier accepts
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")
# <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn] (ECR registry endpoints)
_ECR_HOST = re.compile(r"(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")


class InvalidReference(ValueError):
    """A repository reference, tag or digest is malformed (a usage error)."""


@dataclass(frozen=True)
class Repository:
    """One repository on one registry: where to connect and the repository name."""

    host: str  # host[:port]
    name: str
    scheme: str = "https"

    @property
    def base_url(self) -> str:
        """Return the registry's base URL (`https://host`)."""
        return f"{self.scheme}://{self.host}"

    @property
    def hostname(self) -> str:
        """Return the host without its port."""
        if self.host.startswith("["):
            return self.host[1 : self.host.index("]")]
        return self.host.rsplit(":", 1)[0] if ":" in self.host else self.host

    @property
    def ecr(self) -> tuple[str, str] | None:
        """Return (account id, region) when this is an Amazon ECR registry host, else None."""
        return ecr_host(self.hostname)

    def __str__(self) -> str:
        """Render as `host/name` (with `http://` when plain HTTP)."""
        prefix = "http://" if self.scheme == "http" else ""
        return f"{prefix}{self.host}/{self.name}"


def ecr_host(hostname: str) -> tuple[str, str] | None:
    """Return (account id, region) when a host name is an Amazon ECR registry's (FIPS and China included)."""
    match = _ECR_HOST.fullmatch(hostname.lower())
    return (match.group(1), match.group(2)) if match else None


def is_loopback(hostname: str) -> bool:
    """Tell whether a host name is a loopback address (`localhost`, 127.0.0.0/8, ::1)."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _hostname(host: str) -> str | None:
    """Return the host name of `name[:port]` or `[IPv6]:port`, or None when it is malformed."""
    if host.startswith("["):
        address, bracket, port = host[1:].partition("]")
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return None
        return address if bracket and (port == "" or (port[:1] == ":" and _port_ok(port[1:]))) else None
    hostname, colon, port = host.partition(":")
    return hostname if _HOST.fullmatch(hostname) and (not colon or _port_ok(port)) else None


def _port_ok(port: str) -> bool:
    """Tell whether a port is 1-65535 (refused at parse time, not after the retries)."""
    return port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535


def parse_repository(text: str) -> Repository:
    """Parse `[http://]HOST[:PORT]/REPOSITORY`, refusing plain HTTP for non-loopback hosts."""
    scheme = "https"
    rest = text
    if rest.startswith("http://"):
        scheme, rest = "http", rest[len("http://") :]
    elif rest.startswith("https://"):
        rest = rest[len("https://") :]
    if "/" not in rest:
        raise InvalidReference(f"{text!r} is not HOST[:PORT]/REPOSITORY")
    host, name = rest.split("/", 1)
    hostname = _hostname(host)
    if hostname is None:
        raise InvalidReference(f"{text!r}: {host!r} is not a registry host[:port] (IPv6: [address]:port)")
    if ":" in name or "@" in name:
        raise InvalidReference(f"{text!r}: give the repository only; name tags with --tag and digests with --digest")
    if not REPOSITORY_PATTERN.fullmatch(name) or len(name) > 255:
        raise InvalidReference(f"{text!r}: {name!r} is not a valid repository name (lower case, a-z0-9 . _ - /)")
    repository = Repository(host=host, name=name, scheme=scheme)
    if scheme == "http" and not is_loopback(hostname):
        raise InvalidReference(f"{text!r}: plain http:// is accepted only for loopback hosts")
    return repository


def shown(value: object, limit: int = 80) -> str:
    """Render an untrusted value for a message: repr (no control characters), cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_tag(tag: str) -> str:
    """Return the tag when it is a valid OCI tag, else raise InvalidReference."""
    if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
        raise InvalidReference(f"{shown(tag)} is not a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})")
    return tag


def check_digest(digest: str) -> str:
    """Return the digest when it is `sha256:<64 hex>`, else raise InvalidReference."""
    if not isinstance(digest, str) or not DIGEST_PATTERN.fullmatch(digest):
        raise InvalidReference(f"{shown(digest)} is not a sha256 digest (sha256:<64 lower-case hex>)")
    return digest


def check_reference(reference: str) -> str:
    """Return a manifest reference (a tag or a sha256 digest) when valid, else raise InvalidReference."""
    return check_digest(reference) if is_digest(reference) else check_tag(reference)


def is_digest(reference: str) -> bool:
    """Tell whether a manifest reference is a digest rather than a tag."""
    return reference.startswith("sha256:")

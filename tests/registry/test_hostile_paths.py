"""A hostile source cannot write outside the destination repository: tags, digests and paths are checked."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from chalicelib.registry.auth import ANONYMOUS, Authenticator
from chalicelib.registry.errors import RefusedValue
from chalicelib.registry.manifests import Manifest, get_manifest, head_manifest, list_tags, put_manifest
from chalicelib.registry.reference import InvalidReference, Repository, parse_repository
from chalicelib.registry.transport import Transport
from standins import images, skopeo
from standins.ghcr_ecr import EcrStandin
from standins.hostile import HostileHandler, HostileRegistry
from standins.push import PushedImage
from tests.support.engine_helpers import FAST_RETRY, ecr_env, run_sync

Pusher = Callable[..., PushedImage]
pytestmark = pytest.mark.timeout(60)


def _catalog(ecr: EcrStandin) -> list[str]:
    auth = (ecr.credential.username, ecr.credential.password)
    return httpx.get(f"{ecr.url}/v2/_catalog?n=1000", auth=auth).json()["repositories"]


@pytest.mark.registry
def test_listed_tags_that_climb_out_of_the_repository_are_skipped_and_nothing_else_is_written(
        ecr: EcrStandin, push_image: Pusher, new_repo_name: Callable[..., str]) -> None:
    dest, victim, evil = new_repo_name("it"), new_repo_name("victim"), new_repo_name("evil")
    held = push_image(ecr, victim, images.single_image(seed=victim), ("latest",))
    image = images.single_image(seed=dest)
    hostile = [f"../../../{victim}/manifests/latest", f"../../../{evil}/manifests/pwned",
               "..%2f..%2fx", "latest?n=1", "a#b", "-x", "x" * 129, ""]
    with HostileRegistry("octo/app").serve(image, ["v1", *hostile]) as source:
        report = run_sync(source.host, "octo/app", ecr.host, dest, ecr_env(ecr), all_tags=True)
        paths = source.paths()
    assert report.ok, report.errors
    assert report.tags_set == ["v1"]
    assert report.exit_code == 0
    assert len(report.warnings) == 1 and "listed 8 tag(s) outside the tag grammar, skipped" in report.warnings[0]
    assert "'../../../" in report.warnings[0] and report.to_dict()["warnings"] == report.warnings
    assert not any(".." in p or "#" in p for p in paths), paths
    assert skopeo.digest(f"{ecr.host}/{dest}:v1", ecr.credential) == image.digest
    assert skopeo.digest(f"{ecr.host}/{victim}:latest", ecr.credential) == held.digest
    assert skopeo.list_tags(f"{ecr.host}/{victim}", ecr.credential) == ["latest"]
    catalog = _catalog(ecr)
    assert victim in catalog and evil not in catalog and not any(r.startswith("evil/") for r in catalog)


@pytest.fixture
def recorder() -> Iterator[HostileRegistry]:
    """A stand-in that does not normalise paths: it records exactly what a client sent."""
    with HostileRegistry("octo/app") as server:
        yield server


def _transport(server: HostileRegistry, name: str = "octo/app") -> Transport:
    repo = Repository(host=server.host, name=name, scheme="http")
    return Transport(repo, Authenticator([ANONYMOUS]), role="destination", hint="-", retry=FAST_RETRY,
                     sleep=lambda s: None)


@pytest.mark.parametrize("path", [
    "/v2/octo/app/manifests/../../../victim/app/manifests/latest",
    "/v2/octo/app/manifests/%2e%2e/%2E%2E/x",
    "/v2/octo/app/manifests/..%2f..%2fvictim",
    "/v2/octo/app/./manifests/x",
    "/v2/octo/app//manifests/x",
    "/v2/octo/other/manifests/latest",
    "/v2/octo/app-x/manifests/latest",
    "/v2/_catalog",
])
def test_the_transport_refuses_a_path_outside_its_repository_before_sending(recorder: HostileRegistry,
        path: str) -> None:
    transport = _transport(recorder)
    with pytest.raises(RefusedValue, match="outside .*/octo/app: a value from the registry"):
        transport.request("PUT", path, scopes=[("octo/app", "pull,push")], content=b"{}")
    with pytest.raises(RefusedValue):  # an absolute URL on the same registry is held to the same rule
        transport.request("DELETE", recorder.url + path, scopes=[("octo/app", "pull,push")])
    assert recorder.requests == []


def test_the_transport_sends_paths_inside_its_repository(recorder: HostileRegistry) -> None:
    transport = _transport(recorder)
    assert transport.request("GET", "/v2/octo/app/tags/list", scopes=[("octo/app", "pull")]).status_code == 200
    assert transport.request("GET", "/v2/", scopes=[]).status_code == 200
    assert recorder.paths() == ["/v2/octo/app/tags/list", "/v2/"]


@pytest.mark.parametrize("reference", ["latest?x=1", "a#b", "../x", "sha256:abc", "x/y", "-x"])
def test_manifest_references_that_are_neither_tag_nor_digest_are_refused(recorder: HostileRegistry,
        reference: str) -> None:
    transport = _transport(recorder)
    manifest = Manifest(digest="sha256:" + "0" * 64, media_type=images.OCI_MANIFEST, raw=b"{}")
    for call in (lambda: head_manifest(transport, reference), lambda: get_manifest(transport, reference),
                 lambda: put_manifest(transport, reference, manifest)):
        with pytest.raises(RefusedValue, match="refusing manifest reference"):
            call()
    assert recorder.requests == []


def _bad_digest_header(handler: HostileHandler) -> None:
    handler.reply(200, b"", {"Docker-Content-Digest": "sha256:../../x", "Content-Type": images.OCI_MANIFEST})


def test_a_header_digest_outside_the_grammar_is_an_error(recorder: HostileRegistry) -> None:
    recorder.on("HEAD", "/manifests/", _bad_digest_header)
    with pytest.raises(RefusedValue, match="Docker-Content-Digest 'sha256:../../x' is not sha256"):
        head_manifest(_transport(recorder), "v1")


def test_a_truncated_tag_listing_is_an_error_not_a_short_list(recorder: HostileRegistry) -> None:
    def looping(handler: HostileHandler) -> None:
        handler.reply(200, b'{"tags": ["a"]}', {"Content-Type": "application/json",
                                                 "Link": '</v2/octo/app/tags/list?n=1&last=a>; rel="next"'})

    recorder.on("GET", "/tags/list", looping)
    with pytest.raises(RefusedValue, match="pagination loops; listing incomplete"):
        list_tags(_transport(recorder))


@pytest.mark.parametrize("text", ["http://127.0.0.1:99999/octo/app", "http://127.0.0.1:0/octo/app",
                                  "http://[::1]:65536/octo/app"])
def test_a_port_out_of_range_is_refused_at_parse_time(text: str) -> None:
    with pytest.raises(InvalidReference, match="not a registry host"):
        parse_repository(text)


def test_a_header_digest_outside_the_grammar_fails_a_manifest_read_by_tag(recorder: HostileRegistry) -> None:
    def bad(handler: HostileHandler) -> None:
        handler.reply(200, b'{"schemaVersion": 2, "manifests": []}', {"Docker-Content-Digest": "sha256:/../x",
                                                                     "Content-Type": images.OCI_INDEX})

    recorder.on("GET", "/manifests/", bad)
    with pytest.raises(RefusedValue, match="Docker-Content-Digest 'sha256:/../x' is not sha256"):
        get_manifest(_transport(recorder), "v1")

"""The registry stand-ins behave like the registries they stand in for, as skopeo sees them."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from standins import images, skopeo
from standins.faults import FaultProxy
from standins.ghcr_ecr import EcrStandin, GhcrStandin
from standins.push import PushedImage, PushError, RegistryClient
from standins.registry import RegistryProcess
from standins.tokens import PULL, Credential, Principal, TokenPolicy, TokenServer

pytestmark = pytest.mark.registry


def test_a_pushed_multi_platform_index_reads_back_identical_through_skopeo(
        ghcr: GhcrStandin, pushed_index: PushedImage) -> None:
    assert pushed_index.media_type == images.OCI_INDEX
    assert len(pushed_index.child_digests) == 3
    assert skopeo.manifest_tree(pushed_index.ref(), ghcr.fallback) == [pushed_index.digest,
                                                                       *pushed_index.child_digests]


@pytest.mark.parametrize(("ref", "repository"), [
    ("127.0.0.1:5000/octo/app@sha256:" + "a" * 64, "127.0.0.1:5000/octo/app"),
    ("127.0.0.1:5000/octo/app:v1", "127.0.0.1:5000/octo/app"),
    ("127.0.0.1:5000/octo/app", "127.0.0.1:5000/octo/app"),
    ("ghcr.io/octo/app:v1", "ghcr.io/octo/app"),
    ("ghcr.io/octo/app@sha256:" + "b" * 64, "ghcr.io/octo/app"),
])
def test_the_repository_of_a_reference_keeps_the_registry_port(ref: str, repository: str) -> None:
    assert skopeo.repository_of(ref) == repository


def test_platform_images_share_their_base_layers() -> None:
    index = images.multi_platform_index("shared")
    layer_sets = [{b.digest for b in child.blobs[1:]} for child in index.children]
    shared = set.intersection(*layer_sets)
    assert len(shared) == 2
    assert len(index.all_blobs()) == 2 + 3 * 2  # shared layers + (config + own layer) per platform


def test_images_are_deterministic_from_their_seed() -> None:
    assert images.multi_platform_index("x").digest == images.multi_platform_index("x").digest
    assert images.multi_platform_index("x").digest != images.multi_platform_index("y").digest
    assert images.large_image(3 << 20, "z").digest == images.large_image(3 << 20, "z").digest


def test_skopeo_pushes_a_docker_manifest_list_digest_exact(
        ecr: EcrStandin, repo_name: str, push_image: Callable[..., PushedImage]) -> None:
    manifest_list = images.docker_manifest_list(repo_name)
    pushed = push_image(ecr, repo_name, manifest_list, ("v1",), via="skopeo")
    assert pushed.media_type == images.DOCKER_LIST
    assert skopeo.manifest_tree(pushed.ref(), ecr.credential) == [manifest_list.digest,
                                                                  *pushed.child_digests]


def test_skopeo_pushes_an_oci_index_layout(
        plain_registry: RegistryProcess, repo_name: str, push_image: Callable[..., PushedImage]) -> None:
    pushed = push_image(plain_registry, repo_name, images.multi_platform_index(repo_name), ("a", "b"), via="skopeo")
    assert sorted(skopeo.list_tags(f"{plain_registry.host}/{repo_name}")) == ["a", "b"]
    assert skopeo.digest(pushed.ref("b")) == pushed.digest


def test_a_cosign_signature_and_an_artifact_with_subject_push_as_they_are(
        ghcr: GhcrStandin, pushed_index: PushedImage, push_image: Callable[..., PushedImage]) -> None:
    signature = images.cosign_signature(pushed_index.digest)
    sig_tag = images.signature_tag(pushed_index.digest)
    push_image(ghcr, pushed_index.repository, signature, (sig_tag,))
    sbom = images.artifact(pushed_index.manifest)
    push_image(ghcr, pushed_index.repository, sbom, ("sbom",))
    assert sig_tag == "sha256-" + pushed_index.digest.removeprefix("sha256:") + ".sig"
    raw = skopeo.inspect_raw(pushed_index.ref(sig_tag), ghcr.fallback)
    layer = images.Manifest(images.OCI_MANIFEST, raw).json()["layers"][0]
    assert layer["mediaType"] == images.COSIGN_LAYER
    assert images.COSIGN_SIGNATURE_ANNOTATION in layer["annotations"]
    assert skopeo.digest(pushed_index.ref("sbom"), ghcr.fallback) == sbom.digest
    assert sbom.json()["subject"]["digest"] == pushed_index.digest


def test_a_large_layer_is_generated_and_pushed_without_holding_it(
        ecr: EcrStandin, repo_name: str, push_image: Callable[..., PushedImage]) -> None:
    image = images.large_image(24 << 20, repo_name)
    layer = image.blobs[1]
    assert layer.data is None and layer.size == 24 << 20
    pushed = push_image(ecr, repo_name, image)
    with RegistryClient(ecr.url, repo_name, ecr.credential) as client:
        assert client.has_blob(layer.digest)
    assert skopeo.digest(pushed.ref(), ecr.credential) == image.digest


def test_the_app_token_logs_in_but_is_denied_pulling_a_private_image(
        ghcr: GhcrStandin, pushed_index: PushedImage) -> None:
    login = httpx.get(ghcr.tokens.realm, params={"service": ghcr.tokens.service},
                      auth=(ghcr.app_token.username, ghcr.app_token.password))
    assert login.status_code == 200
    with pytest.raises(skopeo.SkopeoError, match="403"):
        skopeo.digest(pushed_index.ref(), ghcr.app_token)
    denied = [r for r in ghcr.token_requests(pushed_index.repository) if r.username == "x-access-token"]
    assert denied and all(r.status == 403 and not r.granted for r in denied)


def test_anonymous_and_the_app_token_pull_public_images_only(
        ghcr: GhcrStandin, public_repo_name: str, pushed_index: PushedImage,
        push_image: Callable[..., PushedImage]) -> None:
    public = push_image(ghcr, public_repo_name, images.single_image(public_repo_name))
    assert skopeo.digest(public.ref(), None) == public.digest
    assert skopeo.digest(public.ref(), ghcr.app_token) == public.digest
    with pytest.raises(skopeo.SkopeoError):
        skopeo.digest(pushed_index.ref(), None)
    assert ghcr.usernames_tried(public_repo_name)[-2:] == [None, "x-access-token"]


def test_a_wrong_password_gets_401_with_a_json_error(ghcr: GhcrStandin) -> None:
    answer = httpx.get(ghcr.tokens.realm, params={"scope": "repository:public/x:pull"}, auth=("pusher", "wrong"))
    assert answer.status_code == 401
    assert answer.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert all("wrong" not in repr(r) for r in ghcr.tokens.requests)


def test_the_ecr_stand_in_speaks_basic_auth(ecr: EcrStandin) -> None:
    assert httpx.get(ecr.url + "/v2/").headers["WWW-Authenticate"].startswith("Basic ")
    assert httpx.get(ecr.url + "/v2/", auth=(ecr.credential.username, ecr.credential.password)).status_code == 200
    assert httpx.get(ecr.url + "/v2/", auth=("AWS", "wrong")).status_code == 401


def test_the_proxy_counts_requests_token_calls_and_blob_bytes(
        ghcr: GhcrStandin, pushed_index: PushedImage, fault_proxy: Callable[..., FaultProxy], tmp_path: Path) -> None:
    proxy = fault_proxy(ghcr)
    ref = f"{proxy.host}/{pushed_index.repository}:v1"
    skopeo.copy(f"docker://{ref}", f"dir:{tmp_path / 'copy'}", ghcr.fallback, None)
    assert proxy.traffic.count("token") >= 1
    assert proxy.traffic.count("manifest", "GET") == 4
    assert proxy.traffic.count("blob", "GET") == len(pushed_index.blobs)
    assert proxy.traffic.blob_bytes == pushed_index.blob_bytes


def test_upload_locations_stay_routed_through_the_proxy(
        ecr: EcrStandin, repo_name: str, fault_proxy: Callable[..., FaultProxy]) -> None:
    proxy = fault_proxy(ecr)
    with RegistryClient(proxy.url, repo_name, ecr.credential) as client:
        started = client.request("POST", "blobs/uploads/", ok=(202,))
    assert started.headers["Location"].startswith(f"{proxy.url}/v2/{repo_name}/blobs/uploads/")


BlobClient = tuple[FaultProxy, RegistryClient, images.Blob]


@pytest.fixture
def blob_client(ghcr: GhcrStandin, pushed_index: PushedImage,
                fault_proxy: Callable[..., FaultProxy]) -> Iterator[BlobClient]:
    """A pull client for the pushed index's repository through a fresh proxy, and its biggest blob."""
    proxy = fault_proxy(ghcr)
    client = RegistryClient(proxy.url, pushed_index.repository, ghcr.fallback, actions="pull")
    blob = max(pushed_index.manifest.all_blobs().values(), key=lambda b: b.size)
    client.has_blob(blob.digest)  # log in before faults apply
    yield proxy, client, blob
    client.close()


def test_the_proxy_injects_500s_a_given_number_of_times(blob_client: BlobClient) -> None:
    proxy, client, blob = blob_client
    proxy.fail("GET", r"/blobs/", status=500, count=2)
    statuses = [client.request("GET", f"blobs/{blob.digest}", ok=(200, 500)).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]


def test_the_proxy_throttles_with_retry_after(blob_client: BlobClient) -> None:
    proxy, client, blob = blob_client
    proxy.throttle("HEAD", r"/blobs/")
    answer = client.request("HEAD", f"blobs/{blob.digest}", ok=(429,))
    assert answer.headers["Retry-After"] == "1"
    assert client.has_blob(blob.digest)


def test_the_proxy_drops_a_blob_mid_body(blob_client: BlobClient) -> None:
    proxy, client, blob = blob_client
    proxy.drop("GET", r"/blobs/sha256:", after_bytes=100)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get_blob(blob.digest)
    assert client.get_blob(blob.digest) == blob.data


def test_the_proxy_corrupts_one_byte_of_a_blob(blob_client: BlobClient) -> None:
    proxy, client, blob = blob_client
    proxy.corrupt("GET", r"/blobs/sha256:")
    corrupted = client.get_blob(blob.digest)
    assert len(corrupted) == blob.size and corrupted != blob.data
    assert sum(a != b for a, b in zip(corrupted, blob.data or b"")) == 1


def test_a_proxy_that_is_down_answers_nothing_until_up(blob_client: BlobClient) -> None:
    proxy, client, blob = blob_client
    proxy.down()
    with pytest.raises(httpx.TransportError):
        client.has_blob(blob.digest)
    proxy.up()
    assert client.has_blob(blob.digest)
    proxy.stop()
    with pytest.raises(httpx.ConnectError):
        client.has_blob(blob.digest)


def test_a_registry_process_stops_with_its_process_group(registry_tools: None, tmp_path: Path) -> None:
    registry = RegistryProcess(tmp_path, None, "short").start()
    pid = registry._process.pid  # type: ignore[union-attr]
    assert httpx.get(registry.url + "/v2/").status_code == 200
    registry.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(httpx.ConnectError):
        httpx.get(registry.url + "/v2/", timeout=2)


def test_push_errors_name_the_request(plain_registry: RegistryProcess) -> None:
    with RegistryClient(plain_registry.url, "it/missing") as client, pytest.raises(PushError, match="404"):
        client.get_manifest("nope")


def test_token_claims_carry_only_the_granted_actions() -> None:
    reader = Credential("reader", "pw")
    policy = TokenPolicy(principals=[Principal(reader, {"team/*": PULL})], deny_at_endpoint=False)
    server = TokenServer(policy)
    status, body = server.issue("reader", policy.find("reader", "pw"),
                                ["repository:team/app:pull,push", "repository:other/app:pull"])
    claims = json.loads(base64.urlsafe_b64decode(body["token"].split(".")[1] + "=="))
    assert status == 200 and body["token"] == body["access_token"]
    assert claims["access"] == [{"type": "repository", "name": "team/app", "actions": ["pull"]}]
    assert claims["aud"] == server.service and claims["iss"] == server.signer.issuer
    status, body = server.issue("reader", policy.find("reader", "pw"), ["repository:other/app:pull"])
    assert status == 200  # refused, but as an empty token: the registry then answers 401 insufficient_scope


def test_the_proxy_hangs_up_without_answering(blob_client: BlobClient) -> None:
    proxy, client, blob = blob_client
    proxy.hang_up("HEAD", r"/blobs/")
    with pytest.raises(httpx.RemoteProtocolError):
        client.has_blob(blob.digest)
    assert client.has_blob(blob.digest)

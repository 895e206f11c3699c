"""The ECR destination path: GetAuthorizationToken Basic credentials and CreateRepository (moto for AWS)."""

from __future__ import annotations

import base64
import datetime

import boto3
import pytest

from chalicelib.sync import engine as sync
from chalicelib.registry.reference import parse_repository
from standins import skopeo
from standins.aws import aws_variables
from standins.ghcr_ecr import EcrStandin, GhcrStandin
from standins.push import PushedImage
from standins.registry import RegistryProcess
from tests.support.engine_helpers import FAST_RETRY, Sleeps, ghcr_env

pytestmark = pytest.mark.registry


class _Exceptions:
    class RepositoryAlreadyExistsException(Exception):
        """Raised like boto3's modelled exception."""


class EcrApi:
    """GetAuthorizationToken / CreateRepository answering like ECR, for the ECR stand-in's password."""

    exceptions = _Exceptions

    def __init__(self, password: str) -> None:
        self.password = password
        self.token_calls = 0
        self.repositories: dict[str, list[dict[str, str]]] = {}

    def get_authorization_token(self, **kwargs: object) -> dict:
        self.token_calls += 1
        token = base64.b64encode(f"AWS:{self.password}".encode()).decode()
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=12)
        return {"authorizationData": [{"authorizationToken": token, "expiresAt": expires}]}

    def create_repository(self, repositoryName: str, tags: list[dict[str, str]]) -> dict:  # noqa: N803
        if repositoryName in self.repositories:
            raise self.exceptions.RepositoryAlreadyExistsException(repositoryName)
        self.repositories[repositoryName] = tags
        return {}


def test_an_ecr_destination_logs_in_with_get_authorization_token_and_creates_the_repository(ghcr: GhcrStandin,
        ecr: EcrStandin, pushed_index: PushedImage, repo_name: str) -> None:
    api = EcrApi(ecr.credential.password)
    request = sync.SyncRequest.build(f"http://{ghcr.host}/{repo_name}", f"http://{ecr.host}/ghcr/{repo_name}",
                                     tags=["v1"])
    env = {**ghcr_env(ghcr), "GHCR2ECR_DEST_ECR": "true"}
    report = sync.run(request, env=env, ecr_client=api, retry=FAST_RETRY, sleep=Sleeps())
    assert report.ok, report.errors
    assert report.repository_created is True and api.token_calls == 1
    owner, package = repo_name.split("/", 1)
    assert {t["Key"]: t["Value"] for t in api.repositories[f"ghcr/{repo_name}"]} == {
        "ghcr2ecr:source": f"http://{ghcr.host}/{repo_name}", "ghcr2ecr:owner": owner, "ghcr2ecr:package": package}
    assert skopeo.digest(f"{ecr.host}/ghcr/{repo_name}:v1", ecr.credential) == pushed_index.digest
    again = sync.run(request, env=env, ecr_client=api, retry=FAST_RETRY, sleep=Sleeps())
    assert again.ok and again.repository_created is False


def test_no_create_repository_skips_create_repository(ghcr: GhcrStandin, ecr: EcrStandin,
        pushed_index: PushedImage, repo_name: str) -> None:
    api = EcrApi(ecr.credential.password)
    request = sync.SyncRequest.build(f"http://{ghcr.host}/{repo_name}", f"http://{ecr.host}/{repo_name}",
                                     tags=["v1"], create_repository=False)
    report = sync.run(request, env={**ghcr_env(ghcr), "GHCR2ECR_DEST_ECR": "1"}, ecr_client=api, retry=FAST_RETRY)
    assert report.ok and report.repository_created is None and api.repositories == {}


def test_the_forced_ecr_path_uses_boto3_against_aws_endpoint_url(ghcr: GhcrStandin,
        plain_registry: RegistryProcess, moto_url: str, pushed_index: PushedImage, repo_name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in aws_variables(moto_url).items():
        monkeypatch.setenv(name, value)
    request = sync.SyncRequest.build(f"http://{ghcr.host}/{repo_name}", f"{plain_registry.url}/mirror/{repo_name}",
                                     tags=["v1"])
    report = sync.run(request, env={**ghcr_env(ghcr), "GHCR2ECR_DEST_ECR": "true"}, retry=FAST_RETRY)
    assert report.ok, report.errors
    assert report.repository_created is True
    described = boto3.client("ecr").describe_repositories(repositoryNames=[f"mirror/{repo_name}"])
    assert described["repositories"][0]["repositoryName"] == f"mirror/{repo_name}"


def test_ecr_hosts_are_recognised_by_name() -> None:
    assert parse_repository("123456789012.dkr.ecr.eu-west-1.amazonaws.com/ghcr/o/p").ecr == ("123456789012",
                                                                                              "eu-west-1")
    assert parse_repository("ghcr.io/o/p").ecr is None


def _moto_ecr(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> object:
    """Point boto3 at the moto server and return its ECR client."""
    for name, value in aws_variables(moto_url).items():
        monkeypatch.setenv(name, value)
    return boto3.client("ecr")


def _owner_tag(client: object, name: str) -> str | None:
    arn = client.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryArn"]  # type: ignore[attr-defined]
    tags = client.list_tags_for_resource(resourceArn=arn)["tags"]  # type: ignore[attr-defined]
    return {t["Key"]: t["Value"] for t in tags}.get("ghcr2ecr:owner-id")


def test_a_repository_made_for_one_github_account_id_refuses_another(ghcr: GhcrStandin,
        plain_registry: RegistryProcess, moto_url: str, pushed_index: PushedImage, repo_name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    client = _moto_ecr(moto_url, monkeypatch)
    request = sync.SyncRequest.build(f"http://{ghcr.host}/{repo_name}", f"{plain_registry.url}/owned/{repo_name}",
                                     tags=["v1"])
    env = {**ghcr_env(ghcr), "GHCR2ECR_DEST_ECR": "true", "GHCR2ECR_OWNER_ID": "1001"}
    assert sync.run(request, env=env, retry=FAST_RETRY).ok
    assert _owner_tag(client, f"owned/{repo_name}") == "1001"
    # the login was renamed and taken by account 2002: its syncs must not write into 1001's repository
    moved = sync.SyncRequest.build(f"http://{ghcr.host}/{repo_name}", f"{plain_registry.url}/owned/{repo_name}",
                                   tags=["v1"], digest=None)
    report = sync.run(moved, env={**env, "GHCR2ECR_OWNER_ID": "2002"}, retry=FAST_RETRY)
    assert not report.ok and report.exit_code == 1
    assert "created for GitHub account id 1001, not 2002" in report.cause()
    assert report.stats.manifests_copied == 0 and report.stats.blobs_copied == 0


def test_a_repository_without_an_owner_tag_is_claimed_on_first_use(ghcr: GhcrStandin,
        plain_registry: RegistryProcess, moto_url: str, pushed_index: PushedImage, repo_name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    client = _moto_ecr(moto_url, monkeypatch)
    client.create_repository(repositoryName=f"template/{repo_name}")  # type: ignore[attr-defined]
    request = sync.SyncRequest.build(f"http://{ghcr.host}/{repo_name}",
                                     f"{plain_registry.url}/template/{repo_name}", tags=["v1"],
                                     create_repository=False)
    env = {**ghcr_env(ghcr), "GHCR2ECR_DEST_ECR": "true", "GHCR2ECR_OWNER_ID": "1001"}
    report = sync.run(request, env=env, retry=FAST_RETRY)
    assert report.ok, report.errors
    assert report.repository_created is None and _owner_tag(client, f"template/{repo_name}") == "1001"


def test_a_malformed_owner_id_is_reported_not_ignored(ghcr: GhcrStandin, plain_registry: RegistryProcess,
        moto_url: str, pushed_index: PushedImage, repo_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _moto_ecr(moto_url, monkeypatch)
    request = sync.SyncRequest.build(f"http://{ghcr.host}/{repo_name}", f"{plain_registry.url}/bad/{repo_name}",
                                     tags=["v1"])
    report = sync.run(request, env={**ghcr_env(ghcr), "GHCR2ECR_DEST_ECR": "true", "GHCR2ECR_OWNER_ID": "acme"},
                      retry=FAST_RETRY)
    assert not report.ok and "GHCR2ECR_OWNER_ID must be a numeric GitHub account id" in report.cause()

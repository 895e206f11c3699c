"""The dispatch handler: queued sync request → scoped token in SSM → StartBuild with references."""

from __future__ import annotations

import json

import httpx
import pytest
from githubkit.exception import RequestFailed, RequestTimeout

from chalicelib.jobs import Job, Package, Selection
from tests.support.app_fixtures import APP_ID, PROJECT, TOKEN_PREFIX, AppEnv, dispatch_queued, load_delivery, post

INDEX = "multiplatform-tagged-index"


def queue_and_dispatch(client, env: AppEnv, name: str = INDEX) -> list:
    """Deliver a fixture to the webhook, then run dispatch on what was queued."""
    assert post(client, load_delivery(name)).status_code == 202
    return dispatch_queued(client, env)


def minted(env: AppEnv) -> list:
    """Return the token-minting requests the stand-in received."""
    return [r for r in env.github.requests if r.path.endswith("/access_tokens")]


def test_a_tagged_index_starts_one_build_with_the_token_by_reference(client, app_env: AppEnv) -> None:
    queue_and_dispatch(client, app_env)
    [call] = app_env.codebuild.calls
    variables = app_env.codebuild.variables()
    [token] = app_env.github.tokens
    digest = load_delivery(INDEX).payload["registry_package"]["package_version"]["version"]
    request = Job.from_json(app_env.sqs.sent[0]["body"])
    parameter = variables["GHCR2ECR_SOURCE_TOKEN"][1]
    assert parameter.startswith(TOKEN_PREFIX + request.dedup_id + "/")  # one per attempt: see test_dispatch_redelivery
    assert call["project"] == PROJECT
    assert call["idempotency_token"] == request.dedup_id
    assert set(variables) == {"GHCR2ECR_JOB", "GITHUB_API_URL", "GHCR2ECR_INSTALLATION_ID", "GHCR2ECR_SOURCE_TOKEN",
                              # where on_build_state reports (no revision label here: no check run)
                              "GHCR2ECR_GITHUB_REPOSITORY", "GHCR2ECR_STORAGE_RECORDS"}
    assert variables["GHCR2ECR_SOURCE_TOKEN"] == ("PARAMETER_STORE", parameter)
    assert variables["GITHUB_API_URL"] == ("PLAINTEXT", app_env.github.url)
    assert variables["GHCR2ECR_INSTALLATION_ID"] == ("PLAINTEXT", "77")
    job = app_env.build_job()
    assert (job.origin, job.correlation_id, job.installation_id, job.owner) == (
        "webhook", "a1f0c5e0-ca7b-11f0-8a1e-1c2f3e4d5a04", 77, "octo-org")
    assert (job.selection.digest, job.selection.tag, job.create_repository) == (digest, "v1.2.3", True)
    [target] = job.targets
    assert target.source == "ghcr.io/octo-org/app"
    assert target.dest == "123456789012.dkr.ecr.us-east-1.amazonaws.com/ghcr/octo-org/app"
    assert (target.owner_id, target.repository, target.tags, target.signatures) == (1001, "app", None, True)
    assert job.deadline > 0 and variables["GHCR2ECR_JOB"][0] == "PLAINTEXT"
    stored = app_env.boto("ssm").get_parameter(Name=parameter, WithDecryption=True)["Parameter"]
    assert (stored["Type"], stored["Value"]) == ("SecureString", token.value)
    assert not token.revoked  # the build revokes it when it is done


def test_the_token_is_scoped_to_the_linked_repository_with_variable_permissions(client, app_env: AppEnv) -> None:
    queue_and_dispatch(client, app_env)
    [mint] = minted(app_env)
    assert mint.auth == "jwt"
    # FACTS.md §2: githubkit's model would have dropped actions_variables and sent {}.
    assert mint.body == {"repositories": ["app"],
                         "permissions": {"packages": "read", "metadata": "read", "actions_variables": "read"}}
    assert app_env.github.tokens[0].repositories == ["app"]


def test_a_package_without_repository_reads_organization_variables(client, app_env: AppEnv) -> None:
    app_env.github.set_org_variable("octo-org", "GHCR2ECR_REPOSITORY", "mirrors/base")
    queue_and_dispatch(client, app_env, "published-no-repository")
    [mint] = minted(app_env)
    assert "repositories" not in mint.body
    assert mint.body["permissions"] == {"packages": "read", "metadata": "read",
                                        "organization_actions_variables": "read"}
    assert any(r.path == "/orgs/octo-org/actions/variables" for r in app_env.github.requests)
    assert app_env.build_job().targets[0].dest.endswith("/ghcr/octo-org/mirrors/base")


def test_a_user_package_without_repository_uses_defaults(client, app_env: AppEnv) -> None:
    queue_and_dispatch(client, app_env, "published-user-package")
    [mint] = minted(app_env)
    assert mint.body["permissions"] == {"packages": "read", "metadata": "read"}
    assert not any("variables" in r.path for r in app_env.github.requests)
    assert app_env.build_job().targets[0].dest.endswith("/ghcr/jane-dev/dotfiles")


def test_upper_case_and_nested_names_make_lower_case_destinations(client, app_env: AppEnv) -> None:
    queue_and_dispatch(client, app_env, "published-uppercase-login")
    queue_and_dispatch(client, app_env, "published-nested-name")
    dests = [app_env.build_job(i).targets[0].dest.split("/", 1)[1] for i in (0, 1)]
    assert dests == ["ghcr/mixed-case-org/service-api", "ghcr/octo-org/tools/builder"]
    assert app_env.build_job(0).targets[0].source == "ghcr.io/mixed-case-org/service-api"


def test_repository_variables_win_over_organization_ones(client, app_env: AppEnv) -> None:
    app_env.github.set_org_variable("octo-org", "GHCR2ECR_TAGS", "release-*")
    app_env.github.set_org_variable("octo-org", "GHCR2ECR_SIGNATURES", "false")
    app_env.github.set_repo_variables("octo-org", "app", {"ghcr2ecr_tags": "v*"})
    queue_and_dispatch(client, app_env)
    [target] = app_env.build_job().targets
    assert target.tags == "v*"  # the repository's value
    assert target.signatures is False  # organization value still applies


def test_an_organization_variable_not_shared_with_the_repository_does_not_apply(client, app_env: AppEnv) -> None:
    app_env.github.set_org_variable("octo-org", "GHCR2ECR_ENABLED", "false", visibility="selected",
                                    selected_repositories=["other"])
    queue_and_dispatch(client, app_env)
    assert len(app_env.codebuild.calls) == 1


def test_variables_on_a_second_page_are_read(client, app_env: AppEnv) -> None:
    filler = {f"OTHER_{i:02d}": "x" for i in range(40)}
    app_env.github.set_repo_variables("octo-org", "app", {**filler, "ZZ_LAST": "y", "GHCR2ECR_ENABLED": "false"})
    queue_and_dispatch(client, app_env)
    assert app_env.codebuild.calls == []
    pages = [r.query.get("page") for r in app_env.github.requests if r.path.endswith("/actions/variables")]
    assert pages == [["1"], ["2"]]


def test_disabled_installation_starts_nothing_and_revokes_the_token(client, app_env: AppEnv) -> None:
    app_env.github.set_repo_variables("octo-org", "app", {"GHCR2ECR_ENABLED": "false"})
    queue_and_dispatch(client, app_env)
    assert app_env.codebuild.calls == []
    assert app_env.token_parameters() == []
    assert [t.revoked for t in app_env.github.tokens] == [True]


def test_a_filtered_out_event_tag_still_starts_the_build_with_the_filter(client, app_env: AppEnv) -> None:
    # DESIGN.md: GHCR2ECR_TAGS is applied in the build, since the digest's other tags (aliases) may pass.
    app_env.github.set_repo_variables("octo-org", "app", {"GHCR2ECR_TAGS": "v*,!*.3"})
    queue_and_dispatch(client, app_env)
    job = app_env.build_job()
    assert job.selection.tag == "v1.2.3" and job.targets[0].tags == "v*,!*.3"
    assert not app_env.github.tokens[0].revoked  # the build's to revoke


def test_signatures_false_is_passed_to_the_build(client, app_env: AppEnv) -> None:
    app_env.github.set_repo_variables("octo-org", "app", {"GHCR2ECR_SIGNATURES": "FALSE"})
    queue_and_dispatch(client, app_env)
    assert app_env.build_job().targets[0].signatures is False


@pytest.mark.parametrize("name,value", [
    ("GHCR2ECR_ENABLED", "yes"), ("GHCR2ECR_SIGNATURES", "1"), ("GHCR2ECR_TAGS", "v 1"),
    ("GHCR2ECR_TAGS", ""), ("GHCR2ECR_REPOSITORY", "../other-org/app"), ("GHCR2ECR_REPOSITORY", "/abs"),
    ("GHCR2ECR_REPOSITORY", "Upper"), ("GHCR2ECR_REPOSITORY", "a" * 300),
])
def test_an_invalid_variable_ends_the_request_naming_the_variable(client, app_env: AppEnv, json_logs,
                                                                  name: str, value: str) -> None:
    app_env.github.set_repo_variables("octo-org", "app", {name: value})
    [result] = queue_and_dispatch(client, app_env)
    assert result is None  # handled: SQS deletes the message, no retry
    assert app_env.codebuild.calls == []
    assert app_env.token_parameters() == []
    [failure] = json_logs.find("sync not started")
    assert name in failure["reason"]
    assert failure["code"] in ("invalid_config", "invalid_destination")


def test_a_fallback_secret_is_passed_by_reference_when_it_exists(client, app_env: AppEnv) -> None:
    app_env.boto("secretsmanager").create_secret(Name="ghcr2ecr/ghcr-pull/1001", SecretString="operator-pat")
    queue_and_dispatch(client, app_env)
    variables = app_env.codebuild.variables()
    assert variables["GHCR2ECR_SOURCE_FALLBACK_TOKEN"] == ("SECRETS_MANAGER", "ghcr2ecr/ghcr-pull/1001")
    assert "operator-pat" not in json.dumps(app_env.codebuild.calls)


def test_no_fallback_variable_without_the_secret(client, app_env: AppEnv) -> None:
    queue_and_dispatch(client, app_env)
    assert "GHCR2ECR_SOURCE_FALLBACK_TOKEN" not in app_env.codebuild.variables()


@pytest.mark.parametrize("change,code", [("remove", "installation_gone"), ("suspend", "installation_suspended")])
def test_a_deleted_or_suspended_installation_gets_no_build(client, app_env: AppEnv, json_logs,
                                                           change: str, code: str) -> None:
    assert post(client, load_delivery(INDEX)).status_code == 202
    if change == "remove":
        app_env.github.remove_installation(77)
    else:
        app_env.github.suspend_installation(77)
    assert dispatch_queued(client, app_env) == [None]
    assert app_env.codebuild.calls == [] and app_env.github.tokens == []
    assert [line["code"] for line in json_logs.find("sync not started")] == [code]


def test_a_repository_outside_the_installation_is_a_permanent_failure(client, app_env: AppEnv, json_logs) -> None:
    app_env.github.installations[77].repositories = ["other"]
    assert queue_and_dispatch(client, app_env) == [None]
    assert app_env.codebuild.calls == []
    assert [line["code"] for line in json_logs.find("sync not started")] == ["token_refused"]


def test_a_disallowed_account_in_the_queue_is_dropped_without_calling_github(client, app_env: AppEnv) -> None:
    request = Job(666, (Package("evil-corp", 6666, "payload"),), Selection("sha256:" + "a" * 64, "v1"), "webhook",
                  "d-1")
    event = client.events.generate_sqs_event([request.to_json()])
    assert client.lambda_.invoke("dispatch", event).payload is None
    assert app_env.github.requests == [] and app_env.codebuild.calls == []


def test_a_malformed_message_is_dropped(client, app_env: AppEnv) -> None:
    event = client.events.generate_sqs_event(['{"not": "ours"}', "not json"])
    assert client.lambda_.invoke("dispatch", event).payload is None
    assert app_env.github.requests == []


def test_github_server_errors_raise_for_redelivery_then_the_retry_succeeds(client, app_env: AppEnv, json_logs
                                                                          ) -> None:
    assert post(client, load_delivery(INDEX)).status_code == 202
    [message] = app_env.receive()
    event = client.events.generate_sqs_event([message["Body"]])
    app_env.github.inject("/app/installations/77/access_tokens", status=502, count=3)  # beyond 2 quick retries
    with pytest.raises(RequestFailed) as raised:
        client.lambda_.invoke("dispatch", event)
    assert raised.value.response.status_code == 502
    assert app_env.codebuild.calls == []
    [line] = json_logs.find("dispatch failed; SQS will redeliver the message")
    assert line["error"] == "RequestFailed" and line["delivery"] == "a1f0c5e0-ca7b-11f0-8a1e-1c2f3e4d5a04"
    client.lambda_.invoke("dispatch", event)  # SQS redelivers the same message
    assert len(app_env.codebuild.calls) == 1


class TimingOut(httpx.HTTPTransport):
    """The network to the GitHub stand-in, where the next `count` requests under `prefix` time out."""

    def __init__(self, prefix: str, count: int) -> None:
        super().__init__()
        self.prefix, self.count = prefix, count

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Raise httpx's read timeout for a matching request; pass the others through."""
        if self.count > 0 and request.url.path.startswith(self.prefix):
            self.count -= 1
            raise httpx.ReadTimeout("timed out", request=request)
        return super().handle_request(request)


def test_a_github_timeout_raises_for_redelivery(client, app_env: AppEnv, monkeypatch) -> None:
    from chalicelib.github import client as github_client
    from chalicelib.github.app import GitHubApp

    network = TimingOut("/repos/octo-org/app/actions/", count=3)  # the first try and both quick retries
    github_client.use(GitHubApp(str(APP_ID), app_env.github.private_key_pem, app_env.github.url, transport=network))
    assert post(client, load_delivery(INDEX)).status_code == 202
    with pytest.raises(RequestTimeout):
        dispatch_queued(client, app_env)
    assert network.count == 0 and app_env.codebuild.calls == []
    assert [t.revoked for t in app_env.github.tokens] == [True]  # the unused token does not linger


@pytest.mark.parametrize("code", ["AccountLimitExceededException", "ThrottlingException"])
def test_codebuild_limits_raise_for_redelivery_and_clean_up(client, app_env: AppEnv, code: str) -> None:
    assert post(client, load_delivery(INDEX)).status_code == 202
    [message] = app_env.receive()
    event = client.events.generate_sqs_event([message["Body"]])
    app_env.codebuild.fail_next.append(code)
    with pytest.raises(Exception, match=code):
        client.lambda_.invoke("dispatch", event)
    assert app_env.token_parameters() == []
    assert [t.revoked for t in app_env.github.tokens] == [True]
    client.lambda_.invoke("dispatch", event)
    assert len(app_env.codebuild.calls) == 1 and len(app_env.token_parameters()) == 1


def test_the_private_key_is_read_from_ssm_once_per_container(client, app_env: AppEnv) -> None:
    queue_and_dispatch(client, app_env)
    app_env.boto("ssm").delete_parameter(Name="/ghcr2ecr/github/private-key")
    queue_and_dispatch(client, app_env, "updated-linked")
    assert len(app_env.codebuild.calls) == 2


def test_a_message_failing_every_time_ends_in_the_dead_letter_queue(client, app_env: AppEnv, monkeypatch) -> None:
    from chalicelib.github import app as github_seam

    monkeypatch.setattr(github_seam, "RETRY_BACKOFF_SECONDS", 0.0)
    assert post(client, load_delivery(INDEX)).status_code == 202
    app_env.github.inject("/app/installations/*", status=503, count=1000)
    sqs = app_env.boto("sqs")
    attempts = 0
    while True:  # what the Lambda event source mapping does: receive, invoke, leave the message on failure
        batch = sqs.receive_message(QueueUrl=app_env.queue_url, VisibilityTimeout=0).get("Messages", [])
        if not batch:
            break
        attempts += 1
        with pytest.raises(RequestFailed) as raised:
            client.lambda_.invoke("dispatch", client.events.generate_sqs_event([batch[0]["Body"]]))
        assert raised.value.response.status_code == 503
        assert attempts <= 5
    [dead] = sqs.receive_message(QueueUrl=app_env.dlq_url).get("Messages", [])
    assert attempts == 5 and Job.from_json(dead["Body"]).selection.tag == "v1.2.3"
    assert app_env.codebuild.calls == [] and app_env.token_parameters() == []


def test_a_rotated_private_key_is_picked_up(client, app_env: AppEnv, monkeypatch) -> None:
    from chalicelib.github import client as github_client

    queue_and_dispatch(client, app_env)
    first = github_client.github_app()
    app_env.boto("ssm").put_parameter(Name="/ghcr2ecr/github/private-key", Value="rotated", Type="SecureString",
                                      Overwrite=True)
    assert github_client.github_app() is first  # cached for a while: one SSM read per container per 15 minutes
    from chalicelib import aws

    monkeypatch.setattr(aws.ssm(), "get_secret", lambda name, max_age=0: "rotated")
    assert github_client.github_app() is not first

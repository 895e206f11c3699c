"""The support stack template and the Lambdas' policies: valid, confined to their prefixes, queue invariants."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint import api as cfnlint_api
from cfnlint.decode import cfn_yaml

from chalicelib.config import Settings
from chalicelib.ops.chalice_config import FUNCTIONS, ChaliceConfig
from chalicelib.ops.deploy import OUTPUT_VARIABLES
from chalicelib.ops.policy import lambda_policies, policy_files

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_TEXT = (ROOT / "infra" / "support-stack.yml").read_text()
TEMPLATE: dict[str, Any] = cfn_yaml.loads(TEMPLATE_TEXT)
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
PARAMETERS: dict[str, Any] = TEMPLATE["Parameters"]
CONFIG = ChaliceConfig(ROOT)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _sub(value: Any) -> str:
    """Return a resource expression as text: the Fn::Sub string, or a readable form of Ref/GetAtt."""
    if isinstance(value, str):
        return value
    if "Fn::Sub" in value:
        return str(value["Fn::Sub"])
    if "Fn::GetAtt" in value:
        return "GetAtt:" + ".".join(_list(value["Fn::GetAtt"]))
    if "Ref" in value:
        return "Ref:" + value["Ref"]
    raise AssertionError(f"unexpected resource expression {value!r}")


def _role_statements() -> list[dict[str, Any]]:
    role = RESOURCES["CopyRole"]["Properties"]
    return [statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]]


# ---- the template is valid ------------------------------------------------------------------------
@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-southeast-2"])
def test_cfn_lint_finds_nothing_in_the_support_stack(region: str) -> None:
    matches = cfnlint_api.lint(TEMPLATE_TEXT, regions=[region])
    assert [str(match) for match in matches] == []


def test_stack_parameters_default_to_the_designs_prefixes() -> None:
    assert PARAMETERS["EcrRepositoryPrefix"]["Default"] == Settings.ecr_repository_prefix
    assert PARAMETERS["TokenParameterPrefix"]["Default"] == Settings.token_parameter_prefix
    assert PARAMETERS["PullSecretPrefix"]["Default"] == Settings.ghcr_pull_secret_prefix


def test_stack_outputs_carry_what_deploy_writes_into_the_chalice_config() -> None:
    assert set(OUTPUT_VARIABLES) | {"CodeBundleBucketName"} <= set(TEMPLATE["Outputs"])


# ---- the queue -------------------------------------------------------------------------------------
def test_sync_queue_is_fifo_with_caller_supplied_deduplication_ids() -> None:
    queue = RESOURCES["SyncQueue"]["Properties"]
    assert queue["FifoQueue"] is True
    assert queue["ContentBasedDeduplication"] is False
    assert queue["QueueName"]["Fn::Sub"].endswith(".fifo")


def test_failed_messages_move_to_a_fifo_dead_letter_queue_after_a_bounded_number_of_tries() -> None:
    redrive = RESOURCES["SyncQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["SyncDeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    bounds = PARAMETERS["MaxReceiveCount"]
    assert 1 <= bounds["MinValue"] <= bounds["Default"] <= bounds["MaxValue"] <= 20
    dlq = RESOURCES["SyncDeadLetterQueue"]["Properties"]
    assert dlq["FifoQueue"] is True  # a FIFO queue's dead-letter queue must be FIFO too
    # A message keeps its original enqueue time in the DLQ: give it longer there than in the source queue.
    assert dlq["MessageRetentionPeriod"] > RESOURCES["SyncQueue"]["Properties"]["MessageRetentionPeriod"]


def test_default_visibility_timeout_is_at_least_six_times_the_dispatch_timeout() -> None:
    queue = RESOURCES["SyncQueue"]["Properties"]
    assert queue["VisibilityTimeout"] == {"Ref": "QueueVisibilityTimeout"}
    assert PARAMETERS["QueueVisibilityTimeout"]["Default"] >= 6 * CONFIG.lambda_timeout("dev", "dispatch")


# ---- the copy project ------------------------------------------------------------------------------
def test_copy_project_runs_on_lambda_compute_unless_ec2_is_chosen() -> None:
    assert PARAMETERS["Compute"]["Default"] == "lambda"
    assert PARAMETERS["Compute"]["AllowedValues"] == ["lambda", "ec2"]
    environment = RESOURCES["CopyProject"]["Properties"]["Environment"]
    assert environment["Type"] == {"Fn::If": ["UseLambdaCompute", "LINUX_LAMBDA_CONTAINER", "LINUX_CONTAINER"]}
    assert environment["ComputeType"]["Fn::If"][1] == "BUILD_LAMBDA_1GB"
    assert TEMPLATE["Conditions"]["UseLambdaCompute"] == {"Fn::Equals": [{"Ref": "Compute"}, "lambda"]}


def test_copy_project_builds_from_the_s3_bundle_with_the_bundles_buildspec() -> None:
    project = RESOURCES["CopyProject"]["Properties"]
    assert project["Source"]["Type"] == "S3"
    assert project["Source"]["BuildSpec"] == "buildspec/buildspec.yml"
    assert project["Source"]["Location"] == {"Fn::Sub": "${CodeBundleBucket}/${CodeBundleKey}"}
    assert project["LogsConfig"]["CloudWatchLogs"]["GroupName"] == {"Ref": "CopyLogGroup"}


def test_bundle_bucket_is_encrypted_and_never_public() -> None:
    bucket = RESOURCES["CodeBundleBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4


# ---- the copy project's role is confined to the prefixes ------------------------------------------
PARTITION_REGION_ACCOUNT = "arn:${AWS::Partition}:{service}:${AWS::Region}:${AWS::AccountId}:"
ROLE_RESOURCES = {  # action prefix -> the only resources its statements may name
    "ecr": {PARTITION_REGION_ACCOUNT.replace("{service}", "ecr") + "repository/${EcrRepositoryPrefix}/*"},
    "ssm": {PARTITION_REGION_ACCOUNT.replace("{service}", "ssm") + "parameter${TokenParameterPrefix}*"},
    "secretsmanager": {PARTITION_REGION_ACCOUNT.replace("{service}", "secretsmanager") + "secret:${PullSecretPrefix}*"},
    "logs": {"GetAtt:CopyLogGroup.Arn"},
    "s3": {"${CodeBundleBucket.Arn}/bundles/*", "GetAtt:CodeBundleBucket.Arn"},
}
ROLE_ACTIONS = {  # action prefix -> the only actions the role may have
    "ecr": {"GetAuthorizationToken", "BatchCheckLayerAvailability", "BatchGetImage", "InitiateLayerUpload",
            "UploadLayerPart", "CompleteLayerUpload", "PutImage", "CreateRepository", "TagResource",
            "DescribeRepositories", "ListTagsForResource", "ListImages"},
    "ssm": {"GetParameters"},
    "secretsmanager": {"GetSecretValue"},
    "logs": {"CreateLogStream", "PutLogEvents"},
    "s3": {"GetObject", "GetObjectVersion", "GetBucketAcl", "GetBucketLocation"},
}


def test_copy_role_statements_name_only_resources_under_the_prefixes() -> None:
    for statement in _role_statements():
        assert statement["Effect"] == "Allow"
        actions = _list(statement["Action"])
        resources = [_sub(resource) for resource in _list(statement["Resource"])]
        if resources == ["*"]:
            # The only "*": ecr:GetAuthorizationToken has no resource-level permissions.
            assert actions == ["ecr:GetAuthorizationToken"], statement
            continue
        for action in actions:
            service, name = action.split(":")
            assert name in ROLE_ACTIONS[service], action
            assert set(resources) <= ROLE_RESOURCES[service], statement


# What `ghcr2ecr sync` does to an ECR destination, as IAM actions (ECR's registry API authorizes each request):
ENGINE_ECR_ACTIONS = {
    "GetAuthorizationToken",        # registry/ecr.py: the Basic credential
    "CreateRepository",             # registry/ecr.py: a missing destination repository...
    "TagResource",                  # ...created with its ghcr2ecr:* tags (or an untagged one claimed)
    "DescribeRepositories",         # registry/ecr.py: the repository's ARN, to read its tags...
    "ListTagsForResource",          # ...and refuse one made for another GitHub account id
    "BatchGetImage",                # HEAD of manifests by digest and tag (plan, settled tags, signature targets)
    "BatchCheckLayerAvailability",  # HEAD of blobs
    "InitiateLayerUpload",          # POST /blobs/uploads/
    "UploadLayerPart",              # the upload's body...
    "CompleteLayerUpload",          # ...completed by PUT ?digest=
    "PutImage",                     # PUT of manifests by digest, then tags
    "ListImages",                   # dest_state.py: the repository's tag -> digest pairs in bulk
}  # never read from ECR: no GetDownloadUrlForLayer; images never described: no DescribeImages


def test_copy_role_has_exactly_the_ecr_actions_the_engine_calls() -> None:
    actions = {action for statement in _role_statements() for action in _list(statement["Action"])}
    assert {a.split(":")[1] for a in actions if a.startswith("ecr:")} == ENGINE_ECR_ACTIONS


def test_the_copy_role_comment_accounts_for_every_ecr_action_it_grants() -> None:
    block = TEMPLATE_TEXT.split("Sid: EcrPushUnderPrefix", 1)[1].split("Action:", 1)[0]
    comment = " ".join(line.strip().lstrip("# ") for line in block.splitlines() if line.strip().startswith("#"))
    [statement] = [s for s in _role_statements() if s.get("Sid") == "EcrPushUnderPrefix"]
    for action in _list(statement["Action"]):
        assert action.split(":")[1] in comment, f"the comment does not say why {action} is granted"
    assert "nor lists or describes." not in comment  # it grants DescribeRepositories and ListTagsForResource


def test_copy_role_has_no_wildcard_actions_and_no_iam_or_other_services() -> None:
    actions = [action for statement in _role_statements() for action in _list(statement["Action"])]
    assert all("*" not in action for action in actions)
    assert {action.split(":")[0] for action in actions} <= set(ROLE_ACTIONS)


def test_copy_role_can_be_assumed_only_by_codebuild_in_this_account() -> None:
    trust = RESOURCES["CopyRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert len(trust) == 1
    assert trust[0]["Principal"] == {"Service": "codebuild.amazonaws.com"}
    assert trust[0]["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


# ---- the Lambdas' policies -------------------------------------------------------------------------
def _policy(name: str) -> dict[str, Any]:
    return json.loads((ROOT / ".chalice" / name).read_text())


def _allowed(document: dict[str, Any], generic: bool = True, effect: str = "Allow") -> dict[str, set[str]]:
    """Return {action: resources} of one effect's statements; `generic` writes region and account as "*" (committed)."""
    allowed: dict[str, set[str]] = {}
    for statement in document["Statement"]:
        assert statement["Effect"] in ("Allow", "Deny")
        if statement["Effect"] != effect:
            continue
        for action in _list(statement["Action"]):
            resources = _list(statement["Resource"])
            if generic:
                resources = [":".join([*arn.split(":", 5)[:3], "*", "*", arn.split(":", 5)[5]]) for arn in resources]
            allowed.setdefault(action, set()).update(resources)
    return allowed


ARN = r"arn:aws:{service}:[^:]+:[^:]+:"
LAMBDA_RESOURCES = {  # action prefix -> regex every resource must match
    "logs": ARN.format(service="logs") + r"log-group:/aws/lambda/ghcr2ecr-dev(-[a-z_*]+)?(:\*)?",
    "sqs": ARN.format(service="sqs") + re.escape("ghcr2ecr-dev-sync.fifo"),
    "codebuild": ARN.format(service="codebuild") + re.escape("project/ghcr2ecr-dev-copy"),
    "secretsmanager": ARN.format(service="secretsmanager") + re.escape("secret:ghcr2ecr/ghcr-pull/") + r"\*",
    "ssm": ARN.format(service="ssm")
    + r"parameter(/ghcr2ecr/tokens(/\*|/handoff/\*)?|/ghcr2ecr/github/private-key|/ghcr2ecr/github/webhook-secret"
    + r"|/ghcr2ecr/redelivery/state)",
    "ecr": ARN.format(service="ecr") + r"repository/(ghcr/)?\*",
}


def test_chalice_generates_no_policy_and_every_function_has_its_own_file() -> None:
    assert CONFIG.data["autogen_policy"] is False
    stage = CONFIG.data["stages"]["dev"]
    baseline, files = policy_files("dev")
    assert stage["iam_policy_file"] == baseline
    # Chalice names the route Lambda "api_handler": a "webhook" key here would configure nothing.
    assert set(stage["lambda_functions"]) <= set(FUNCTIONS)
    for function, filename in files.items():
        assert stage["lambda_functions"][function]["iam_policy_file"] == filename
        assert (ROOT / ".chalice" / filename).is_file()


def test_chalice_gives_each_lambda_its_own_role_with_its_own_policy_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalice.cli.factory import CLIFactory
    from chalice.deploy import models
    from chalice.deploy.appgraph import ApplicationGraphBuilder

    monkeypatch.setenv("SYNC_QUEUE_NAME", "ghcr2ecr-dev-sync.fifo")
    monkeypatch.setenv("CODEBUILD_PROJECT", "ghcr2ecr-dev-copy")
    config = CLIFactory(str(ROOT)).create_config_obj(chalice_stage_name="dev")
    found: dict[str, models.LambdaFunction] = {}
    pending: list[models.Model] = [ApplicationGraphBuilder().build(config, "dev")]
    while pending:
        node = pending.pop()
        if isinstance(node, models.LambdaFunction):
            found[node.resource_name] = node
        pending.extend(node.dependencies())
    assert set(found) == set(FUNCTIONS)
    _, files = policy_files("dev")
    for name, function in found.items():
        assert Path(function.role.policy.filename).name == files[name]  # type: ignore[attr-defined]
        # The policy's log group is the one Lambda writes to: /aws/lambda/<function name>.
        logs = _policy(files[name])["Statement"][0]["Resource"]
        assert logs[0].endswith(f"log-group:/aws/lambda/{function.function_name}"), (name, logs)


def test_committed_policies_are_what_deploy_generates() -> None:
    # Checked in with "*" for region and account; `deploy` rewrites them with the deployed ones.
    first = _policy(policy_files("dev")[0])["Statement"][0]["Resource"][0]
    _, _, _, region, account, _ = first.split(":", 5)
    generated = lambda_policies(CONFIG.app_name, "dev", CONFIG.env("dev"), account=account, region=region)
    for name, document in generated.items():
        assert _policy(name) == document, name


@pytest.mark.parametrize("name", sorted(lambda_policies("ghcr2ecr", "dev", {})))
def test_lambda_policy_names_only_resources_of_this_stage_and_its_prefixes(name: str) -> None:
    for action, resources in _allowed(_policy(name)).items():
        assert "*" not in action, action
        service = action.split(":")[0]
        for resource in resources:
            assert resource != "*", action
            assert re.fullmatch(LAMBDA_RESOURCES[service], resource), (action, resource)


def test_the_routes_read_only_the_webhook_secret_enqueue_and_write_only_job_tokens() -> None:
    allowed = _allowed(_policy("policy-dev-api_handler.json"))
    assert set(allowed) == {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                            "ssm:GetParameter", "sqs:SendMessage", "ssm:PutParameter", "ssm:DeleteParameter"}
    assert allowed["ssm:GetParameter"] == {"arn:aws:ssm:*:*:parameter/ghcr2ecr/github/webhook-secret"}
    # the hand-off route stores a job's GITHUB_TOKEN (deleted again when it cannot queue), and nothing else
    assert allowed["ssm:PutParameter"] == allowed["ssm:DeleteParameter"] == {
        "arn:aws:ssm:*:*:parameter/ghcr2ecr/tokens/handoff/*"
    }


def test_the_routes_read_and_write_only_hand_off_records_in_the_report_bucket() -> None:
    deployed = lambda_policies("ghcr2ecr", "dev", {"REPORT_BUCKET": "ghcr2ecr-dev-reportbucket-1a2b"})
    s3 = {action: resources for action, resources in _allowed(deployed["policy-dev-api_handler.json"],
                                                              generic=False).items() if action.startswith("s3:")}
    assert s3 == {"s3:GetObject": {"arn:aws:s3:::ghcr2ecr-dev-reportbucket-1a2b/handoffs/*"},
                  "s3:PutObject": {"arn:aws:s3:::ghcr2ecr-dev-reportbucket-1a2b/handoffs/*"},
                  # an unknown id reads as 404, not 403 (S3 answers AccessDenied for a missing key otherwise)
                  "s3:ListBucket": {"arn:aws:s3:::ghcr2ecr-dev-reportbucket-1a2b"}}


def test_dispatch_reads_the_key_consumes_the_queue_writes_tokens_and_starts_builds() -> None:
    allowed = _allowed(_policy("policy-dev-dispatch.json"))
    assert allowed["ssm:GetParameter"] == {"arn:aws:ssm:*:*:parameter/ghcr2ecr/github/private-key"}
    assert allowed["ssm:PutParameter"] == allowed["ssm:DeleteParameter"] == {
        "arn:aws:ssm:*:*:parameter/ghcr2ecr/tokens/*"
    }
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"} <= set(allowed)
    assert "sqs:SendMessage" not in allowed
    assert set(allowed["codebuild:StartBuild"]) == {"arn:aws:codebuild:*:*:project/ghcr2ecr-dev-copy"}
    assert "secretsmanager:GetSecretValue" not in allowed  # dispatch only learns whether a secret exists


def test_the_sweep_can_only_list_and_delete_token_parameters() -> None:
    allowed = _allowed(_policy("policy-dev-sweep_tokens.json"))
    assert set(allowed) == {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                            "ssm:GetParametersByPath", "ssm:DeleteParameter"}
    # admits what is under it
    assert allowed["ssm:GetParametersByPath"] == {"arn:aws:ssm:*:*:parameter/ghcr2ecr/tokens"}
    assert allowed["ssm:DeleteParameter"] == {"arn:aws:ssm:*:*:parameter/ghcr2ecr/tokens/*"}


def test_redeliver_failed_reads_only_the_app_key_and_its_own_state() -> None:
    allowed = _allowed(_policy("policy-dev-redeliver_failed.json"))
    assert set(allowed) == {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "ssm:GetParameter",
                            "ssm:PutParameter"}
    assert allowed["ssm:GetParameter"] == {"arn:aws:ssm:*:*:parameter/ghcr2ecr/github/private-key",
                                           "arn:aws:ssm:*:*:parameter/ghcr2ecr/redelivery/state"}
    assert allowed["ssm:PutParameter"] == {"arn:aws:ssm:*:*:parameter/ghcr2ecr/redelivery/state"}


def test_reconcile_reads_the_key_and_the_mirrors_records_and_only_enqueues() -> None:
    allowed = _allowed(_policy("policy-dev-reconcile.json"))
    assert set(allowed) == {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "ssm:GetParameter",
                            "ecr:DescribeRepositories", "ecr:ListTagsForResource", "sqs:SendMessage"}
    assert allowed["ssm:GetParameter"] == {"arn:aws:ssm:*:*:parameter/ghcr2ecr/github/private-key"}
    assert allowed["ecr:ListTagsForResource"] == {"arn:aws:ecr:*:*:repository/ghcr/*"}


def test_on_build_state_revokes_tokens_reads_the_app_key_reads_reports_writes_markers_and_hand_off_records(
) -> None:
    allowed = _allowed(_policy("policy-dev-on_build_state.json"))
    assert set(allowed) == {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "ssm:GetParameter",
                            "ssm:DeleteParameter"}  # committed before deploy: no REPORT_BUCKET yet
    # the App key: it mints its own tokens (checks / artifact_metadata: write) for the reports
    assert allowed["ssm:GetParameter"] == {"arn:aws:ssm:*:*:parameter/ghcr2ecr/tokens/*",
                                           "arn:aws:ssm:*:*:parameter/ghcr2ecr/github/private-key"}
    # a hand-off's job-token parameter lies under the token prefix: it may delete it
    assert allowed["ssm:DeleteParameter"] == {"arn:aws:ssm:*:*:parameter/ghcr2ecr/tokens/*"}
    deployed = lambda_policies("ghcr2ecr", "dev", {"REPORT_BUCKET": "ghcr2ecr-dev-reportbucket-1a2b"})
    s3 = {action: resources for action, resources in _allowed(deployed["policy-dev-on_build_state.json"],
                                                              generic=False).items() if action.startswith("s3:")}
    bucket = "arn:aws:s3:::ghcr2ecr-dev-reportbucket-1a2b"
    assert s3 == {"s3:GetObject": {f"{bucket}/reports/*", f"{bucket}/handoffs/*"},
                  "s3:PutObject": {f"{bucket}/effects/*", f"{bucket}/handoffs/*"},
                  "s3:DeleteObject": {f"{bucket}/handoffs/*"},
                  "s3:ListBucket": {bucket}}  # a report the build never stored reads as 404, not 403


def test_on_build_state_may_delete_a_job_token_but_never_read_it() -> None:
    denied = _allowed(_policy("policy-dev-on_build_state.json"), effect="Deny")
    assert denied == {"ssm:GetParameter": {"arn:aws:ssm:*:*:parameter/ghcr2ecr/tokens/handoff/*"}}
    for name in lambda_policies("ghcr2ecr", "dev", {}):
        if name != "policy-dev-on_build_state.json":
            assert not _allowed(_policy(name), effect="Deny"), name


def test_dispatch_keeps_hand_off_records_and_reads_digest_markers_as_404_when_missing() -> None:
    deployed = lambda_policies("ghcr2ecr", "dev", {"REPORT_BUCKET": "ghcr2ecr-dev-reportbucket-1a2b"})
    s3 = {action: resources for action, resources in _allowed(deployed["policy-dev-dispatch.json"],
                                                              generic=False).items() if action.startswith("s3:")}
    bucket = "arn:aws:s3:::ghcr2ecr-dev-reportbucket-1a2b"
    assert s3 == {"s3:GetObject": {f"{bucket}/handoffs/*"}, "s3:PutObject": {f"{bucket}/handoffs/*"},
                  "s3:DeleteObject": {f"{bucket}/handoffs/*"}, "s3:ListBucket": {bucket}}


def test_only_the_routes_dispatch_and_on_build_state_touch_the_report_bucket() -> None:
    deployed = lambda_policies("ghcr2ecr", "dev", {"REPORT_BUCKET": "ghcr2ecr-dev-reportbucket-1a2b"})
    touching = {name for name, document in deployed.items() if [a for a in _allowed(document) if a.startswith("s3:")]}
    assert touching == {"policy-dev-api_handler.json", "policy-dev-dispatch.json", "policy-dev-on_build_state.json"}


def test_the_build_may_only_put_its_report_and_deploy_hands_the_bucket_to_the_lambdas() -> None:
    policy = RESOURCES["CopyRoleReportPolicy"]["Properties"]
    assert policy["RoleName"] == {"Ref": "CopyRole"}
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "s3:PutObject"
    assert _sub(statement["Resource"]) == "${ReportBucket.Arn}/reports/*"
    bucket = RESOURCES["ReportBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    expiry = {rule.get("Prefix"): rule.get("ExpirationInDays") for rule in bucket["LifecycleConfiguration"]["Rules"]}
    # reports and markers are needed for minutes; hand-off records stay a month for `ghcr2ecr status`
    assert expiry == {None: None, "reports/": 7, "effects/": 7, "handoffs/": 30}
    assert OUTPUT_VARIABLES["ReportBucketName"] == "REPORT_BUCKET"
    assert TEMPLATE["Outputs"]["ReportBucketName"]["Value"] == {"Ref": "ReportBucket"}


def test_policies_for_a_deployed_account_name_exact_arns() -> None:
    env = {"SYNC_QUEUE_NAME": "ghcr2ecr-prod-sync.fifo", "TOKEN_PARAMETER_PREFIX": "/acme/tokens/"}
    documents = lambda_policies("ghcr2ecr", "prod", env, account="111122223333", region="eu-west-1")
    dispatch = _allowed(documents["policy-prod-dispatch.json"], generic=False)
    assert dispatch["sqs:ReceiveMessage"] == {"arn:aws:sqs:eu-west-1:111122223333:ghcr2ecr-prod-sync.fifo"}
    assert dispatch["ssm:PutParameter"] == {"arn:aws:ssm:eu-west-1:111122223333:parameter/acme/tokens/*"}
    assert dispatch["codebuild:StartBuild"] == {"arn:aws:codebuild:eu-west-1:111122223333:project/ghcr2ecr-prod-copy"}


def test_the_deployment_tools_take_their_defaults_from_settings() -> None:
    defaults = [Settings.token_parameter_prefix, Settings.github_private_key_parameter,
                Settings.github_webhook_secret_parameter, Settings.ghcr_pull_secret_prefix]
    for name in ("policy.py", "deploy.py", "create_app.py"):
        source = (ROOT / "chalicelib" / "ops" / name).read_text()
        assert not [d for d in defaults if f'"{d}"' in source], name  # one place: chalicelib.config.Settings

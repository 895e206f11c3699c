"""Least-privilege IAM policies for the App's Lambdas, one file per function under `.chalice/`.

With `autogen_policy: false` Chalice gives every function its own role and reads its policy from the
function's `iam_policy_file`, else the stage's, else `policy-<stage>.json` (chalice/deploy/appgraph.py
`_create_role_reference`). Each function gets only what it calls, so the internet-facing webhook
cannot read the App's private key; the stage file is a logs-only baseline for any function added later.

SecureStrings use the AWS-managed `aws/ssm` key, whose key policy already admits callers of SSM in the
account, so no `kms:` statement is needed. A customer-managed key would need `kms:Decrypt` (and
`kms:Encrypt` for dispatch and the hand-off route) with `kms:ViaService` = `ssm.<region>.amazonaws.com`.

The report bucket holds build reports (`reports/`), effect markers (`effects/`) and hand-off records
(`handoffs/`: chalicelib/handoff/record.py). A function that reads a key that may be missing also gets
`s3:ListBucket` on the bucket: without it S3 answers a missing key with 403 AccessDenied instead of 404
NoSuchKey (S3 GetObject reference, "Permissions"), and a digest no hand-off mirrors would fail dispatch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chalicelib.config import setting
from chalicelib.ops.chalice_config import FUNCTIONS


def policy_files(stage: str) -> tuple[str, dict[str, str]]:
    """Return the stage's baseline policy file name and each function's (relative to .chalice/)."""
    return f"policy-{stage}.json", {function: f"policy-{stage}-{function}.json" for function in FUNCTIONS}


def lambda_name(app_name: str, stage: str, function: str) -> str:
    """Return the deployed Lambda's name: Chalice names the route function "<app>-<stage>", others get a suffix."""
    return f"{app_name}-{stage}" if function == "api_handler" else f"{app_name}-{stage}-{function}"


def lambda_policies(
    app_name: str, stage: str, env: Mapping[str, str], *, account: str = "*", region: str = "*", partition: str = "aws"
) -> dict[str, dict[str, Any]]:
    """Return {file name: policy document} for the stage; names come from the stage's environment."""
    arn = f"arn:{partition}:{{service}}:{region}:{account}:{{resource}}"

    def ssm_parameter(name: str) -> str:
        # A parameter ARN is "parameter" + the name when it starts with "/", else "parameter/" + name.
        return arn.format(service="ssm", resource="parameter" + (name if name.startswith("/") else "/" + name))

    queue = arn.format(service="sqs", resource=env.get("SYNC_QUEUE_NAME") or f"{app_name}-{stage}-sync.fifo")
    project = arn.format(
        service="codebuild", resource="project/" + (env.get("CODEBUILD_PROJECT") or f"{app_name}-{stage}-copy")
    )
    token_path = ssm_parameter(setting("TOKEN_PARAMETER_PREFIX", env).rstrip("/"))
    tokens = token_path + "/*"
    job_tokens = token_path + "/handoff/*"  # the hand-off route's: chalicelib/handoff/route.py token_parameter
    bucket = env.get("REPORT_BUCKET", "").strip()
    private_key = ssm_parameter(setting("GITHUB_PRIVATE_KEY_PARAMETER", env))
    webhook_secret = ssm_parameter(setting("GITHUB_WEBHOOK_SECRET_PARAMETER", env))
    # Secret ARNs end in "-" plus 6 random characters, hence the trailing wildcard.
    pull_prefix = setting("GHCR_PULL_SECRET_PREFIX", env)
    pull_secrets = arn.format(service="secretsmanager", resource=f"secret:{pull_prefix}*")
    redelivery_state = ssm_parameter(setting("REDELIVERY_STATE_PARAMETER", env))
    prefix = setting("ECR_REPOSITORY_PREFIX", env).strip("/")
    mirrors = arn.format(service="ecr", resource=f"repository/{prefix}/*")

    def logs(function: str) -> dict[str, Any]:
        group = arn.format(service="logs", resource=f"log-group:/aws/lambda/{lambda_name(app_name, stage, function)}")
        return _statement(
            "OwnLogs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], [group, group + ":*"]
        )

    statements: dict[str, list[dict[str, Any]]] = {
        "api_handler": [
            _statement("ReadWebhookSecret", ["ssm:GetParameter"], [webhook_secret]),
            _statement("EnqueueSyncs", ["sqs:SendMessage"], [queue]),
            # POST /github/handoff stores the job's GITHUB_TOKEN (and deletes it when it cannot queue); it never
            # reads one back, nor touches the installation tokens beside it.
            _statement("StoreJobTokens", ["ssm:PutParameter", "ssm:DeleteParameter"], [job_tokens]),
            # The hand-off record and its digest marker: written by POST, read by GET /github/handoff/{id}.
            *_objects(partition, bucket, "HandoffRecords", ["s3:GetObject", "s3:PutObject"], "handoffs/*"),
            *_missing_is_404(partition, bucket),
        ],
        "dispatch": [
            # The SQS event source polls with the function's role (Lambda developer guide, "with-sqs").
            _statement(
                "ConsumeSyncQueue",
                ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                [queue],
            ),
            _statement("ReadAppKey", ["ssm:GetParameter"], [private_key]),
            # Powertools' SSMProvider reads with GetParameter; tokens are written untagged (chalicelib/aws.py).
            _statement("WriteBuildTokens", ["ssm:PutParameter", "ssm:DeleteParameter"], [tokens]),
            _statement("StartCopies", ["codebuild:StartBuild"], [project]),
            _statement("FindPullSecrets", ["secretsmanager:DescribeSecret"], [pull_secrets]),
            # A hand-off's record (running, or failed with dispatch's reason; a failed one's digest marker goes), and
            # the digest markers that make it skip an event whose digest a hand-off mirrors. The job token's
            # parameter (under the token prefix above) is deleted when dispatch refuses the hand-off.
            *_objects(partition, bucket, "HandoffRecords", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                      "handoffs/*"),
            *_missing_is_404(partition, bucket),
        ],
        "on_build_state": [
            # Counters are EMF log lines (no PutMetricData).
            # It reads the token only to revoke it with itself (DELETE /installation/token), then deletes it.
            _statement("RevokeBuildTokens", ["ssm:GetParameter", "ssm:DeleteParameter"], [tokens]),
            # A hand-off's job token (the tenant job's GITHUB_TOKEN) is only deleted, never read: it is not ours to
            # revoke. An explicit deny keeps it so whatever the grant above admits.
            _statement("NeverReadJobTokens", ["ssm:GetParameter"], [job_tokens], effect="Deny"),
            # It mints its own installation tokens to complete the check run and write storage records.
            _statement("ReadAppKey", ["ssm:GetParameter"], [private_key]),
            # The build's report (read); the effect markers (conditional puts: PutObject); the hand-off's record,
            # completed succeeded or failed (a failed one's digest marker deleted). The job token's parameter, under
            # the token prefix above, is deleted, never read to be revoked (chalicelib/build/token_cleanup.py).
            *_objects(partition, bucket, "ReadBuildReports", ["s3:GetObject"], "reports/*"),
            *_objects(partition, bucket, "MarkEffectsDone", ["s3:PutObject"], "effects/*"),
            *_objects(partition, bucket, "HandoffRecords", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                      "handoffs/*"),
            *_missing_is_404(partition, bucket),
        ],
        "sweep_tokens": [
            # GetParametersByPath is authorized on the path itself, which admits everything under it. The sweep lists
            # without decryption and never revokes (old tokens have expired): no kms:Decrypt even with a CMK.
            _statement("ListBuildTokens", ["ssm:GetParametersByPath"], [token_path]),
            _statement("DeleteBuildTokens", ["ssm:DeleteParameter"], [tokens]),
        ],
        "redeliver_failed": [
            # The App key (a JWT lists and redelivers the App's deliveries) and its own state; no token, no queue.
            _statement("ReadAppKey", ["ssm:GetParameter"], [private_key]),
            _statement("RedeliveryState", ["ssm:GetParameter", "ssm:PutParameter"], [redelivery_state]),
        ],
        "reconcile": [
            _statement("ReadAppKey", ["ssm:GetParameter"], [private_key]),
            # UNVERIFIED whether DescribeRepositories without names is authorized against repository/<prefix>/*:
            # listing names and ARNs of the account's repositories is granted; their tags only under the prefix.
            _statement("ListRepositories", ["ecr:DescribeRepositories"],
                       [arn.format(service="ecr", resource="repository/*")]),
            _statement("ReadMirrorRecords", ["ecr:ListTagsForResource"], [mirrors]),
            _statement("EnqueueSyncs", ["sqs:SendMessage"], [queue]),
        ],
    }
    baseline, files = policy_files(stage)
    documents = {baseline: _document([logs("*")])}
    for function, extra in statements.items():
        documents[files[function]] = _document([logs(function), *extra])
    return documents


def _objects(partition: str, bucket: str, sid: str, actions: list[str], prefix: str) -> list[dict[str, Any]]:
    """Return a statement on the report bucket's objects under `prefix`; none before deploy names the bucket."""
    if not bucket:
        return []  # `ghcr2ecr deploy` writes REPORT_BUCKET from the support stack before the policies
    return [_statement(sid, actions, [f"arn:{partition}:s3:::{bucket}/{prefix}"])]


def _missing_is_404(partition: str, bucket: str) -> list[dict[str, Any]]:
    """Return `s3:ListBucket` on the report bucket, so that a GetObject of a missing key is 404, not 403."""
    if not bucket:
        return []
    return [_statement("MissingKeysAre404", ["s3:ListBucket"], [f"arn:{partition}:s3:::{bucket}"])]


def write_policies(chalice_dir: Path, documents: Mapping[str, dict[str, Any]]) -> list[str]:
    """Write the policy files into `.chalice/`; return the names whose content changed."""
    changed = []
    for name, document in documents.items():
        path = Path(chalice_dir) / name
        text = json.dumps(document, indent=2) + "\n"
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed.append(name)
    return changed


def _statement(sid: str, actions: list[str], resources: list[str], effect: str = "Allow") -> dict[str, Any]:
    """Return one statement (Allow unless told)."""
    return {"Sid": sid, "Effect": effect, "Action": actions, "Resource": resources}


def _document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    """Return an IAM policy document."""
    return {"Version": "2012-10-17", "Statement": statements}

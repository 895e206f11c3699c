"""The support stack (infra/support-stack.yml) through CloudFormation: create or update, outputs, delete."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError, WaiterError

from chalicelib.ops.project import Say

TEMPLATE_PATH = "infra/support-stack.yml"
# States from which an update is possible; ROLLBACK_COMPLETE (a failed first create) only allows delete.
UPDATABLE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE",
             "IMPORT_ROLLBACK_COMPLETE"}
FAILED_FIRST_CREATE = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"}


class StackError(RuntimeError):
    """CloudFormation did not reach the wanted state; the message carries its reasons."""


def stack_name(app_name: str, stage: str) -> str:
    """Return the support stack's name for a stage."""
    return f"{app_name}-{stage}-support"


class SupportStack:
    """One CloudFormation stack, driven through an injected boto3 client."""

    def __init__(self, cloudformation: Any, name: str, say: Say, poll_seconds: int = 5) -> None:
        self.cfn, self.name, self.say = cloudformation, name, say
        self._waiter_config = {"Delay": poll_seconds, "MaxAttempts": max(1, 3600 // poll_seconds)}

    def describe(self) -> dict[str, Any] | None:
        """Return the stack's description, or None when it does not exist."""
        try:
            return dict(self.cfn.describe_stacks(StackName=self.name)["Stacks"][0])
        except ClientError as exc:
            # CloudFormation answers a missing stack with ValidationError "Stack with id X does not exist".
            if "does not exist" in str(exc):
                return None
            raise

    def outputs(self) -> dict[str, str]:
        """Return the stack's outputs as {key: value} (empty when the stack does not exist)."""
        stack = self.describe() or {}
        return {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}

    def parameters(self) -> dict[str, str]:
        """Return the stack's current parameters as {key: value} (empty when the stack does not exist)."""
        stack = self.describe() or {}
        return {item["ParameterKey"]: item.get("ParameterValue", "") for item in stack.get("Parameters", [])}

    def deploy(self, template_body: str, parameters: dict[str, str]) -> str:
        """Create or update the stack and wait; return "created", "updated" or "unchanged"."""
        params = [{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()]
        common = {"StackName": self.name, "TemplateBody": template_body, "Parameters": params,
                  "Capabilities": ["CAPABILITY_IAM"]}
        stack = self.describe()
        if stack is not None and stack["StackStatus"] in FAILED_FIRST_CREATE:
            self.say(f"  stack {self.name} is {stack['StackStatus']} (a failed first create): deleting it first")
            self.delete()
            stack = None
        if stack is None:
            self.say(f"  creating stack {self.name}")
            self.cfn.create_stack(**common, OnFailure="ROLLBACK", Tags=[{"Key": "ghcr2ecr:stack", "Value": self.name}])
            self._wait("stack_create_complete", "create")
            return "created"
        if stack["StackStatus"] not in UPDATABLE:
            raise StackError(
                f"stack {self.name} is {stack['StackStatus']}: wait for the operation in progress to end, then re-run"
            )
        self.say(f"  updating stack {self.name}")
        try:
            self.cfn.update_stack(**common)
        except ClientError as exc:
            if "No updates are to be performed" in str(exc):
                return "unchanged"
            raise
        self._wait("stack_update_complete", "update")
        return "updated"

    def delete(self) -> bool:
        """Delete the stack and wait; return False when there was none."""
        if self.describe() is None:
            return False
        self.cfn.delete_stack(StackName=self.name)
        self._wait("stack_delete_complete", "delete")
        return True

    def _wait(self, waiter: str, action: str) -> None:
        """Wait for a stack operation; on failure raise with the resources' failure reasons."""
        try:
            self.cfn.get_waiter(waiter).wait(StackName=self.name, WaiterConfig=self._waiter_config)
        except WaiterError as exc:
            raise StackError(f"could not {action} stack {self.name}: {self.failure_reasons() or exc}") from exc
        stack = self.describe()
        # The create waiter also stops on some UPDATE_* states; only a clean *_COMPLETE is success.
        if stack is not None and (
            not stack["StackStatus"].endswith("_COMPLETE") or "ROLLBACK" in stack["StackStatus"]
        ):
            raise StackError(f"could not {action} stack {self.name} ({stack['StackStatus']}): {self.failure_reasons()}")

    def failure_reasons(self) -> str:
        """Return the reasons of the stack's most recent failed resource events."""
        try:
            events = self.cfn.describe_stack_events(StackName=self.name)["StackEvents"]
        except ClientError:
            return ""
        reasons = [
            f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason', '')}"
            for event in events[:50]
            if event.get("ResourceStatus", "").endswith("FAILED")
        ]
        return "; ".join(reasons[:5])


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object (and object version) in `bucket`; return how many were deleted."""
    deleted = 0
    paginator = s3.get_paginator("list_object_versions")
    try:
        pages = list(paginator.paginate(Bucket=bucket))
    except ClientError as exc:
        if "NoSuchBucket" in str(exc):
            return 0
        raise
    for page in pages:
        keys = [{"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[start:start + 1000], "Quiet": True})
            deleted += len(keys[start:start + 1000])
    return deleted

"""The webhook when AWS fails it: a 503 with a JSON body, so GitHub shows the delivery as failed."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from chalicelib import aws
from tests.support.app_fixtures import AppEnv, load_delivery, post


class FailingSsm(aws.Ssm):
    """An SSM seam whose every read fails the way boto3 does."""

    def __init__(self, error: Exception) -> None:
        super().__init__(client=object())
        self.error = error

    def get_secret(self, name: str, max_age: int = 300) -> str:
        """Fail like SSM."""
        raise self.error


@pytest.mark.parametrize("error", [
    EndpointConnectionError(endpoint_url="https://ssm.us-east-1.amazonaws.com/"),
    ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetParameter"),
    ClientError({"Error": {"Code": "ParameterNotFound", "Message": ""}}, "GetParameter"),
])
def test_an_unreadable_webhook_secret_is_a_503_with_json(client, app_env: AppEnv, json_logs, error) -> None:
    aws.use(aws.Ssm, FailingSsm(error))
    response = post(client, load_delivery("multiplatform-tagged-index"))
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.body) == {"status": "error",
                                         "reason": "could not verify the delivery; redeliver it later"}
    assert app_env.sqs.sent == []
    [line] = json_logs.find("could not read the webhook secret")
    assert line["level"] == "ERROR" and line["error"] == type(error).__name__


def test_a_missing_signature_is_still_401_without_reading_the_secret(client, app_env: AppEnv) -> None:
    aws.use(aws.Ssm, FailingSsm(RuntimeError("never read")))
    delivery = load_delivery("multiplatform-tagged-index")
    headers = {k: v for k, v in delivery.headers().items() if k != "X-Hub-Signature-256"}
    assert post(client, delivery, headers).status_code == 401

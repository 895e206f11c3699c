"""The support stack's alarms and dashboard: per-stage metrics, the optional SNS topic, metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from chalicelib.ops.deploy import Aws
from tests.support.ops_fixtures import MOTO_CFN, FakeChalice, FakeInstaller, config, parameters, run_deploy
from tests.ops.test_infra import RESOURCES

pytestmark = MOTO_CFN
ROOT = Path(__file__).resolve().parents[2]
ALARMS = {name: resource["Properties"] for name, resource in RESOURCES.items()
          if resource["Type"] == "AWS::CloudWatch::Alarm"}


def test_the_four_alarms_watch_what_the_issue_names() -> None:
    watched = {(p["Namespace"], p["MetricName"]) for p in ALARMS.values()}
    assert watched == {("AWS/SQS", "ApproximateNumberOfMessagesVisible"), ("AWS/CodeBuild", "FailedBuilds"),
                       ("AWS/ApiGateway", "5XXError"), ("AWS/Lambda", "Errors")}


def test_every_alarm_is_confined_to_its_stage_and_notifies_the_topic_only_when_set() -> None:
    for name, properties in ALARMS.items():
        dimensions = json.dumps(properties["Dimensions"])
        assert "Stage" in dimensions or "SyncDeadLetterQueue" in dimensions, name  # ${Stage} or the stage's queue
        for actions in ("AlarmActions", "OKActions"):
            assert properties[actions] == {"Fn::If": ["NotifyAlarms", [{"Ref": "AlarmTopicArn"}],
                                                      {"Ref": "AWS::NoValue"}]}, name
        assert properties["TreatMissingData"] == "notBreaching", name


def dashboard_metrics() -> set[tuple[str, str]]:
    """Return the (namespace, metric) pairs the dashboard plots, SEARCH expressions included."""
    body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    found = set()
    for widget in widgets:
        for metric in widget["properties"]["metrics"]:
            if isinstance(metric[0], dict):
                match = re.search(r"\{(\w+),.*MetricName=\"(\w+)\"", metric[0]["expression"])
                assert match is not None
                namespace, name = match.groups()
                found.add((namespace, name))
            else:
                found.add((metric[0], metric[1]))
    return found


def test_the_dashboard_plots_only_counters_the_code_emits() -> None:
    emitted = set()
    for path in (ROOT / "chalicelib").rglob("*.py"):
        emitted |= set(re.findall(r"logs\.count\(\s*[\"'](\w+)[\"']", path.read_text()))
        emitted |= set(re.findall(r"_unavailable\([^)]*?[\"'](\w+)[\"'], exc", path.read_text()))
    ours = {name for namespace, name in dashboard_metrics() if namespace == "ghcr2ecr"}
    assert ours and ours <= emitted, ours - emitted


def test_deploy_hands_the_stack_each_stages_topic_and_api_gateway_stage(
    project: Path, aws: Aws, installer: FakeInstaller
) -> None:
    # moto's CloudFormation skips AWS::CloudWatch::Alarm: the template's use of both is checked above.
    topic = "arn:aws:sns:us-east-1:123456789012:ghcr2ecr-alerts"
    data = config(project)
    data["stages"]["dev"]["environment_variables"]["ALARM_TOPIC_ARN"] = topic
    (project / ".chalice" / "config.json").write_text(json.dumps(data))
    assert run_deploy(project, aws, installer, FakeChalice(), []) == 0
    assert run_deploy(project, aws, installer, FakeChalice(), [], stage="prod") == 0
    dev, prod = parameters(aws, "dev"), parameters(aws, "prod")
    assert (dev["AlarmTopicArn"], dev["ApiGatewayStage"]) == (topic, "api")
    assert (prod["AlarmTopicArn"], prod["ApiGatewayStage"]) == ("", "prod")  # a new stage: its own API stage
    assert config(project)["stages"]["prod"]["api_gateway_stage"] == "prod"


def test_the_topic_parameter_accepts_an_sns_arn_or_nothing() -> None:
    from tests.ops.test_infra import PARAMETERS

    pattern = re.compile(PARAMETERS["AlarmTopicArn"]["AllowedPattern"])
    assert pattern.fullmatch("") and pattern.fullmatch("arn:aws:sns:eu-west-1:123456789012:ops-alerts")
    assert not pattern.fullmatch("arn:aws:sqs:eu-west-1:123456789012:q")

"""What "Operating" promises of the stack, checked on template.yaml and its nested monitoring.yaml
themselves: the refresh queue's dead-letter queue after five receives (in moto, as SQS does it), the five
alarms, the dashboard's widgets, what the broker's stack hands the monitoring stack, and an access log
that never records paths or query strings."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from broker_local.template import Stack, provision, resolve
from tests.conftest import MONITORING, TEMPLATE

RESOURCES = TEMPLATE["Resources"]
STACK = Stack.from_template(TEMPLATE, stack_name="zoho-broker")
# What the broker's stack hands its nested monitoring stack (alarms, their topic, the dashboard).
WIRING = RESOURCES["Monitoring"]["Properties"]["Parameters"]
MONITORED = MONITORING["Resources"]
# Names resolve with the broker's stack name passed down; every other parameter stands for itself.
MONITORING_STACK = Stack.from_template(
    MONITORING,
    stack_name="zoho-broker-Monitoring-1A2B3C4D",
    parameters={name: name for name in MONITORING["Parameters"]}
    | {"BrokerStackName": resolve(WIRING["BrokerStackName"], STACK)},
)
# Every function the template declares: a function added later is in the alarm and the widgets, or fails here.
FUNCTIONS = [name for name, resource in RESOURCES.items() if resource["Type"] == "AWS::Serverless::Function"]


@pytest.fixture
def provisioned(aws_credentials: None) -> Iterator[Stack]:
    with mock_aws():
        yield provision(TEMPLATE)


def test_a_refresh_message_received_five_times_moves_to_the_dead_letter_queue(provisioned: Stack) -> None:
    # Given a message on the refresh queue that the worker keeps failing on
    sqs = boto3.client("sqs")
    queue = provisioned.physical_ids["RefreshQueue"]
    dead_letters = provisioned.physical_ids["RefreshDeadLetterQueue"]
    sqs.send_message(QueueUrl=queue, MessageBody='{"subscription_id": "sub_0123456789abcdef"}')

    # When it is received five times and never deleted (visibility ends at once here)
    received = 0
    for _ in range(6):
        answer = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0, WaitTimeSeconds=0)
        received += len(answer.get("Messages", []))

    # Then the sixth receive finds it in the dead-letter queue instead
    assert received == 5
    [dead] = sqs.receive_message(QueueUrl=dead_letters, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(dead["Body"]) == {"subscription_id": "sub_0123456789abcdef"}


def _alarms() -> dict[str, dict[str, Any]]:
    return {
        resolve(resource["Properties"]["AlarmName"], MONITORING_STACK): resource["Properties"]
        for resource in MONITORED.values()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def _broker_metric(name: str) -> dict[str, Any]:
    return {
        "Namespace": {"Ref": "MetricsNamespace"},
        "MetricName": name,
        "Dimensions": [{"Name": "service", "Value": "zoho-broker"}],
    }


def test_the_five_alarms_fire_as_the_docs_say_and_notify_the_alarm_topic() -> None:
    alarms = _alarms()

    assert sorted(alarms) == [
        "zoho-broker-announcement-failures",
        "zoho-broker-function-errors",
        "zoho-broker-needs-reauthentication",
        "zoho-broker-refresh-dead-letters",
        "zoho-broker-refresh-failures",
    ]
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        assert alarm["TreatMissingData"] == "notBreaching"  # missing data counts as OK
        assert alarm["EvaluationPeriods"] == 1
    failures = alarms["zoho-broker-refresh-failures"]
    assert {k: failures[k] for k in ("Namespace", "MetricName", "Dimensions")} == _broker_metric(
        "RefreshFailed"
    )
    assert (failures["Statistic"], failures["Period"], failures["ComparisonOperator"]) == (
        "Sum",
        900,
        "GreaterThanThreshold",
    )
    assert failures["Threshold"] == {"Ref": "RefreshFailureAlarmThreshold"}
    assert WIRING["RefreshFailureAlarmThreshold"] == {"Ref": "RefreshFailureAlarmThreshold"}
    assert TEMPLATE["Parameters"]["RefreshFailureAlarmThreshold"]["Default"] == 5
    # Any one in 5 minutes: a subscription needing re-authentication, an event EventBridge did not take
    for name, metric in (
        ("zoho-broker-needs-reauthentication", "SubscriptionNeedsReauthentication"),
        ("zoho-broker-announcement-failures", "AnnouncementFailed"),
    ):
        alarm = alarms[name]
        assert {k: alarm[k] for k in ("Namespace", "MetricName", "Dimensions")} == _broker_metric(metric)
        assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
            "Sum",
            300,
            1,
            "GreaterThanOrEqualToThreshold",
        )
    dead = alarms["zoho-broker-refresh-dead-letters"]
    assert (dead["Namespace"], dead["MetricName"], dead["Threshold"], dead["ComparisonOperator"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        1,
        "GreaterThanOrEqualToThreshold",
    )
    assert dead["Dimensions"] == [{"Name": "QueueName", "Value": {"Ref": "RefreshDeadLetterQueueName"}}]
    errors = alarms["zoho-broker-function-errors"]
    summed = {
        m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
        for m in errors["Metrics"]
        if "MetricStat" in m and m["MetricStat"]["Metric"]["MetricName"] == "Errors"
    }
    assert summed == set(FUNCTIONS) and len(FUNCTIONS) == 6  # summed over 5 minutes
    [expression] = [m for m in errors["Metrics"] if m.get("ReturnData")]
    assert expression["Expression"].startswith("SUM(")
    assert (errors["Threshold"], errors["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")


def _dashboard() -> list[dict[str, Any]]:
    body = MONITORED["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets: list[dict[str, Any]] = json.loads(re.sub(r"\$\{([^}]+)\}", r"\1", body))["widgets"]
    return widgets


def test_the_dashboard_shows_what_the_readme_lists() -> None:
    widgets = _dashboard()
    plotted = {
        (metric[0], metric[1], metric[3])
        for widget in widgets
        for metric in widget["properties"].get("metrics", [])
    }
    [alarm_widget] = [widget for widget in widgets if widget["type"] == "alarm"]

    assert alarm_widget["properties"]["alarms"] == [
        "RefreshFailuresAlarm.Arn",
        "NeedsReauthenticationAlarm.Arn",
        "AnnouncementFailuresAlarm.Arn",
        "RefreshDeadLetterAlarm.Arn",
        "FunctionErrorsAlarm.Arn",
    ]
    broker = {
        ("MetricsNamespace", name, "zoho-broker")
        for name in (
            "RefreshSucceeded",
            "RefreshFailed",
            "RefreshesDue",
            "SubscriptionNeedsReauthentication",
            "SubscriptionRecovered",
            "AnnouncementFailed",
        )
    }
    queues = {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "RefreshDeadLetterQueueName"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "RefreshQueueName"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "RefreshQueueName"),
    }
    api = {("AWS/ApiGateway", name, "HttpApi") for name in ("Count", "4xx", "5xx", "Latency")}
    functions = {
        ("AWS/Lambda", name, function)
        for name in ("Invocations", "Errors", "Duration")
        for function in FUNCTIONS
    }
    assert plotted == broker | queues | api | functions


def test_the_monitoring_stack_watches_this_stacks_functions_queues_and_api() -> None:
    # Given the nested stack's parameters, each a name the alarms or the dashboard use
    declared = MONITORING["Parameters"]

    # Then the broker's stack gives every one of them, and each is the resource of the same role here
    assert set(WIRING) == set(declared)
    assert {name: WIRING[name] for name in FUNCTIONS} == {name: {"Ref": name} for name in FUNCTIONS}
    assert WIRING["HttpApi"] == {"Ref": "HttpApi"}
    assert WIRING["RefreshQueueName"] == {"Fn::GetAtt": ["RefreshQueue", "QueueName"]}
    assert WIRING["RefreshDeadLetterQueueName"] == {"Fn::GetAtt": ["RefreshDeadLetterQueue", "QueueName"]}
    assert {name: WIRING[name] for name in ("MetricsNamespace", "AlarmEmail")} == {
        name: {"Ref": name} for name in ("MetricsNamespace", "AlarmEmail")
    }
    # And the alarm topic and the dashboard reach the stack's outputs through the nested stack's outputs
    outputs = TEMPLATE["Outputs"]
    assert outputs["AlarmTopicArn"]["Value"] == {"Fn::GetAtt": ["Monitoring", "Outputs.AlarmTopicArn"]}
    assert "${Monitoring.Outputs.DashboardName}" in outputs["DashboardUrl"]["Value"]["Fn::Sub"]
    assert set(MONITORING["Outputs"]) == {"AlarmTopicArn", "DashboardName"}
    # And the dashboard's name is the broker stack's, not the nested stack's generated one
    assert resolve(MONITORED["Dashboard"]["Properties"]["DashboardName"], MONITORING_STACK) == (
        f"zoho-broker-{MONITORING_STACK.region}"
    )


def test_the_access_log_records_requests_without_paths_or_query_strings() -> None:
    api = RESOURCES["HttpApi"]["Properties"]["AccessLogSettings"]
    group = RESOURCES["ApiAccessLogGroup"]["Properties"]

    fields = json.loads(api["Format"])
    variables = {name: re.fullmatch(r"\$context\.([A-Za-z.]+)", value) for name, value in fields.items()}

    assert api["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert resolve(group["LogGroupName"], STACK) == "/aws/apigateway/zoho-broker/access"
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert all(variables.values()), fields  # every field is one context variable, nothing else
    used = {match.group(1) for match in variables.values() if match}
    # Exactly these: none carries the path or query string ($context.path), where connect links, codes
    # and states travel.
    assert used == {
        "requestId",
        "requestTime",
        "routeKey",  # the route's template ("GET /connect/{link}"), never the path requested
        "status",
        "responseLatency",
        "integrationLatency",
        "responseLength",
        "identity.sourceIp",
        "identity.userAgent",
        "identity.userArn",
        "error.message",
        "integrationErrorMessage",
    }

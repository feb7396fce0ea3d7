"""The alarms and the dashboard watch metrics by name: every metric of the broker's namespace that
monitoring.yaml (template.yaml's nested stack) names must be emitted, under that name, namespace and
dimension, by the flow that should emit it. The flows run through the functions' handlers and their EMF
output is read back, so renaming a metric in code (or in the template) fails here."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aws_calls import on_call
from botocore.exceptions import ClientError
from flow import connect
from stored import expire_token

from broker_local.functions import function_entry
from broker_local.gateway import LambdaContext, import_handler
from broker_local.template import Stack
from broker_local.zoho_standin import ZohoStandIn
from tests.conftest import MONITORING, ROOT, TEMPLATE
from zoho_broker.services import Services
from zoho_broker.store import aws

MONITORED = MONITORING["Resources"]
NAMESPACE = TEMPLATE["Parameters"]["MetricsNamespace"]["Default"]
SERVICE = {"service": "zoho-broker"}


def _dashboard_metrics() -> set[str]:
    """Names the dashboard's widgets plot from the broker's own namespace."""
    body = MONITORED["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    dashboard = json.loads(re.sub(r"\$\{([^}]+)\}", r"\1", body))  # "${MetricsNamespace}" -> the parameter
    names = set()
    for widget in dashboard["widgets"]:
        for metric in widget["properties"].get("metrics", []):
            namespace, name, *dimensions = metric
            if namespace == "MetricsNamespace":
                assert dict(zip(dimensions[:-1:2], dimensions[1::2], strict=True)) == SERVICE, metric
                names.add(name)
    return names


def _alarm_metrics() -> set[str]:
    names = set()
    for resource in MONITORED.values():
        properties = resource["Properties"]
        if resource["Type"] == "AWS::CloudWatch::Alarm" and properties.get("Namespace") == {
            "Ref": "MetricsNamespace"
        }:
            assert {d["Name"]: d["Value"] for d in properties["Dimensions"]} == SERVICE
            names.add(properties["MetricName"])
    return names


def _emitted(printed: str) -> dict[str, float]:
    """What EMF lines printed: metric name -> value, for the broker's namespace and its one dimension."""
    values: dict[str, float] = {}
    for line in printed.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            if directive["Namespace"] == NAMESPACE and directive["Dimensions"] == [["service"]]:
                assert document["service"] == SERVICE["service"]
                for metric in directive["Metrics"]:
                    values[metric["Name"]] = values.get(metric["Name"], 0) + sum(document[metric["Name"]])
    return values


def _sweep() -> Any:
    handler = import_handler(function_entry(TEMPLATE, "RefresherFunction"), ROOT)
    return handler(
        {"source": "aws.events", "detail-type": "Scheduled Event"}, LambdaContext.for_function("x")
    )


def _refused(**_: Any) -> None:
    raise ClientError({"Error": {"Code": "InternalException", "Message": "injected"}}, "PutEvents")


class Flows:
    """A flow per metric: what a running broker does that should count it."""

    def __init__(
        self,
        connected: Callable[..., str],
        services: Services,
        zoho: ZohoStandIn,
        reconnect: Callable[[str], None],
    ) -> None:
        self.connected, self.services, self.zoho, self.reconnect = connected, services, zoho, reconnect

    def _due(self) -> str:
        sid = self.connected()
        expire_token(self.services, sid, seconds_left=120)
        return sid

    def refresh_succeeded(self) -> None:
        self._due()
        assert _sweep() == {"due": 1, "refreshed_inline": 1, "queued": 0}

    def refresh_failed(self) -> None:
        self._due()
        self.zoho.inject_fault("unavailable")
        assert _sweep() == {"due": 1, "refreshed_inline": 0, "queued": 0}

    def needs_reauthentication(self) -> None:
        self._due()
        self.zoho.revoke_all()
        assert _sweep() == {"due": 1, "refreshed_inline": 0, "queued": 0}

    def announcement_failed(self) -> None:
        """Re-authentication announced while EventBridge refuses every event."""
        with on_call(aws.events(), "PutEvents", _refused, name="refused"):
            self.needs_reauthentication()

    def recovered(self) -> None:
        sid = self._due()
        self.zoho.revoke_all()
        _sweep()
        self.reconnect(sid)  # a person connects it again, through the callback function


FLOWS: dict[str, tuple[Callable[[Flows], None], float]] = {
    "RefreshSucceeded": (Flows.refresh_succeeded, 1),
    "RefreshFailed": (Flows.refresh_failed, 1),
    "RefreshesDue": (Flows.refresh_succeeded, 1),
    "SubscriptionNeedsReauthentication": (Flows.needs_reauthentication, 1),
    "SubscriptionRecovered": (Flows.recovered, 1),
    "AnnouncementFailed": (Flows.announcement_failed, 1),
}


def test_every_metric_the_alarms_and_dashboard_watch_has_a_flow_here() -> None:
    assert _alarm_metrics() == {"RefreshFailed", "SubscriptionNeedsReauthentication", "AnnouncementFailed"}
    assert _alarm_metrics() | _dashboard_metrics() == set(FLOWS)


@pytest.mark.parametrize("metric", sorted(FLOWS))
def test_each_watched_metric_is_emitted_by_its_flow(
    metric: str,
    admin: httpx.Client,
    browser: httpx.Client,
    connected: Callable[..., str],
    services: Services,
    zoho: ZohoStandIn,
    stack: Stack,
    capfd: pytest.CaptureFixture[str],
) -> None:
    def reconnect(sid: str) -> None:
        assert connect(admin, browser, sid, data_centre="eu").status_code == 200

    flow, count = FLOWS[metric]
    flows = Flows(connected, services, zoho, reconnect)
    capfd.readouterr()

    flow(flows)

    assert _emitted(capfd.readouterr().out).get(metric) == count

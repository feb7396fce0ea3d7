"""Every sample event in events/ (the ones `sam local invoke -e` takes) runs through its handler.

The events are static, so on a fresh stack they meet no subscription: each must still get the answer
a user would see (a page or a JSON error), never a 500. HTTP events find their function by route; the
schedule and queue events name theirs, and that function must have such an event in template.yaml.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from broker_local.gateway import LambdaContext, import_handler
from broker_local.functions import function_entry, http_routes
from tests.conftest import ROOT, TEMPLATE

EVENTS = sorted((ROOT / "events").glob("*.json"))

# What each sample shows on a stack where it meets no subscription or state.
EXPECTED: dict[str, tuple[int, str]] = {
    "start-connect.json": (410, "This connect link can&#x27;t be used"),
    "start-connect-continue.json": (410, "This connect link can&#x27;t be used"),
    "callback.json": (400, "incomplete or damaged"),
    "callback-access-denied.json": (400, "incomplete or damaged"),
    "admin-list-integrations.json": (200, "zoho-commerce"),
    "admin-create-subscription.json": (201, "Acme Zoho CRM"),
    "admin-list-subscriptions.json": (200, '"subscriptions"'),
    "admin-get-subscription.json": (404, "No subscription with id"),
    "admin-update-subscription.json": (404, "No subscription with id"),
    "admin-delete-subscription.json": (404, "No subscription with id"),
    "admin-create-connect-link.json": (404, "No subscription with id"),
    "admin-openapi.json": (200, '"openapi"'),
    "admin-create-integration-version.json": (201, '"changed_by":"arn:aws:iam::123456789012:user/operator"'),
    "admin-submit-grant-code.json": (404, "No subscription with id"),
    "admin-create-integration.json": (201, '"built_in":false'),
    "admin-get-integration.json": (200, "ZohoBooks.fullaccess.all"),
    "admin-get-integration-version.json": (200, "Desk.tickets.ALL"),
    "admin-update-integration-version.json": (200, '"default_api_url":"https://www.zohoapis.eu/crm/v8"'),
    "admin-delete-integration-version.json": (409, "is the only version"),
    "proxy-get-records.json": (404, "No subscription with id"),
}


# Events that are not HTTP requests: the function that receives them, and its whole answer.
INVOCATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    # Nothing is due on an empty stack.
    "refresher-schedule.json": ("RefresherFunction", {"due": 0, "refreshed_inline": 0, "queued": 0}),
    # The unknown subscription is logged and dropped (retrying cannot help); only the malformed body
    # goes back to the queue, and on to the dead-letter queue after five receives.
    "refresh-worker-sqs.json": (
        "RefreshWorkerFunction",
        {"batchItemFailures": [{"itemIdentifier": "b7e4d9c2-0f3a-4e8b-8c61-5a2f9d3e7b02"}]},
    ),
}
HTTP_EVENTS = [path for path in EVENTS if path.name not in INVOCATIONS]
OTHER_EVENTS = [path for path in EVENTS if path.name in INVOCATIONS]
# What invokes a function, told by the event's shape, and the template's event type that does so.
EVENT_SOURCES = {"aws.events": ("Schedule", "ScheduleV2"), "aws:sqs": ("SQS",)}


def _handler_for(event: dict[str, Any]) -> Any:
    route_key = event["routeKey"]
    for route in http_routes(TEMPLATE):
        if f"{route.method} {route.path}" == route_key:
            return import_handler(route, ROOT), route.function_id
    raise AssertionError(f"no route in template.yaml for {route_key}")


def _source_of(event: dict[str, Any]) -> str:
    if "Records" in event:
        sources = {record["eventSource"] for record in event["Records"]}
        assert len(sources) == 1, f"records from several sources: {sources}"
        return sources.pop()
    return str(event["source"])


def test_every_sample_event_has_an_expectation() -> None:
    assert {path.name for path in EVENTS} == set(EXPECTED) | set(INVOCATIONS)
    assert not set(EXPECTED) & set(INVOCATIONS)


@pytest.mark.parametrize("path", HTTP_EVENTS, ids=lambda p: p.name)
def test_a_sample_event_runs_through_its_handler(path: Path, broker_env: dict[str, str]) -> None:
    event = json.loads(path.read_text())
    handler, function_id = _handler_for(event)

    answer = handler(event, LambdaContext.for_function(function_id))

    status, text = EXPECTED[path.name]
    assert answer["statusCode"] == status, answer["body"]
    assert text in answer["body"]


@pytest.mark.parametrize("path", OTHER_EVENTS, ids=lambda p: p.name)
def test_a_scheduled_or_queued_sample_event_runs_through_its_function(
    path: Path, broker_env: dict[str, str]
) -> None:
    event = json.loads(path.read_text())
    function_id, expected = INVOCATIONS[path.name]
    events = TEMPLATE["Resources"][function_id]["Properties"].get("Events") or {}
    kinds = {str(source.get("Type")) for source in events.values()}
    assert kinds & set(EVENT_SOURCES[_source_of(event)]), f"{function_id} has no such event: {kinds}"
    handler = import_handler(function_entry(TEMPLATE, function_id), ROOT)

    answer = handler(event, LambdaContext.for_function(function_id))

    assert answer == expected

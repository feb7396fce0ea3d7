"""Every sample event in events/ (the ones `sam local invoke -e` takes) runs through its handler.

The events are static, so on a fresh stack they meet no subscription: each must still get the answer
a user would see (a page or a JSON error), never a 500.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from broker_local.gateway import LambdaContext, import_handler
from broker_local.template import http_routes

from tests.conftest import ROOT, TEMPLATE

EVENTS = sorted((ROOT / "events").glob("*.json"))

# What each sample shows on a stack where it meets no subscription or state.
EXPECTED: dict[str, tuple[int, str]] = {
    "start-connect.json": (410, "This connect link can&#x27;t be used"),
    "callback.json": (400, "malformed"),
    "callback-access-denied.json": (400, "malformed"),
    "admin-list-integrations.json": (200, "zoho-commerce"),
    "admin-create-subscription.json": (201, "Acme Zoho CRM"),
    "admin-list-subscriptions.json": (200, '"subscriptions"'),
    "admin-get-subscription.json": (404, "No subscription with id"),
    "admin-update-subscription.json": (404, "No subscription with id"),
    "admin-delete-subscription.json": (404, "No subscription with id"),
    "admin-create-connect-link.json": (404, "No subscription with id"),
    "admin-openapi.json": (200, '"openapi"'),
}


def _handler_for(event: dict[str, Any]) -> Any:
    route_key = event["routeKey"]
    for route in http_routes(TEMPLATE):
        if f"{route.method} {route.path}" == route_key:
            return import_handler(route, ROOT), route.function_id
    raise AssertionError(f"no route in template.yaml for {route_key}")


def test_every_sample_event_has_an_expectation() -> None:
    assert {path.name for path in EVENTS} == set(EXPECTED)


@pytest.mark.parametrize("path", EVENTS, ids=lambda p: p.name)
def test_a_sample_event_runs_through_its_handler(path: Path, broker_env: dict[str, str]) -> None:
    event = json.loads(path.read_text())
    handler, function_id = _handler_for(event)

    answer = handler(event, LambdaContext.for_function(function_id))

    status, text = EXPECTED[path.name]
    assert answer["statusCode"] == status, answer["body"]
    assert text in answer["body"]

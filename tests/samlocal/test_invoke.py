"""`sam local invoke` of every function of the built stack with its sample event from events/: the
handler paths, the layer and its aarch64 binaries, the environment and the template's wiring, as shipped.

The events are the files as they are: on the fresh local stack they meet no subscription, so each gets
the answer tests/events expects of it from source (a page, a JSON error, what the refresher reported,
the worker's failed batch items). The answer is asserted, never sam's exit code.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from tests.events.test_sample_events import EXPECTED, INVOCATIONS
from tests.samlocal.local_stack import LocalStack

pytestmark = pytest.mark.slow

# One event per function; the admin's create and list follow, writing through to moto's DynamoDB.
HTTP_INVOCATIONS = {
    "AdminFunction": ["admin-list-integrations.json"],
    "StartFunction": ["start-connect.json"],
    "CallbackFunction": ["callback.json"],
    "ProxyFunction": ["proxy-get-records.json"],
}


def test_every_function_of_the_template_is_invoked() -> None:
    from broker_local.template import load_template

    resources = load_template(ROOT / "template.yaml")["Resources"]
    functions = {
        name for name, resource in resources.items() if resource["Type"] == "AWS::Serverless::Function"
    }

    assert functions == set(HTTP_INVOCATIONS) | {function for function, _ in INVOCATIONS.values()}


@pytest.mark.parametrize(
    ("function", "event"),
    [(function, event) for function, events in HTTP_INVOCATIONS.items() for event in events],
)
def test_a_route_of_the_built_stack_answers_its_sample_event(
    local_stack: LocalStack, function: str, event: str
) -> None:
    answer, output = local_stack.invoke(function, event)

    status, shown = EXPECTED[event]
    assert isinstance(answer, dict) and "statusCode" in answer, output
    assert answer["statusCode"] == status, output
    assert shown in answer["body"], output


def test_a_subscription_created_through_the_built_admin_function_is_in_dynamodb(
    local_stack: LocalStack,
) -> None:
    answer, output = local_stack.invoke("AdminFunction", "admin-create-subscription.json")

    assert isinstance(answer, dict) and answer.get("statusCode") == 201, output
    created = json.loads(answer["body"])
    assert "sample-client-secret-change-me" not in output, "the client secret was echoed or logged"
    listed, output = local_stack.invoke("AdminFunction", "admin-list-subscriptions.json")
    assert isinstance(listed, dict) and listed.get("statusCode") == 200, output
    names = [subscription["subscription_id"] for subscription in json.loads(listed["body"])["subscriptions"]]
    assert created["subscription_id"] in names, output


@pytest.mark.parametrize("event", sorted(INVOCATIONS))
def test_a_scheduled_or_queued_function_of_the_built_stack_answers_its_sample_event(
    local_stack: LocalStack, event: str
) -> None:
    function, expected = INVOCATIONS[event]

    answer, output = local_stack.invoke(function, event)

    assert answer == expected, output

"""The admin API: subscriptions CRUD, connect links, catalogue and OpenAPI, with bad input refused."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime
from typing import Any

import boto3
import httpx
import pytest
from aws_calls import failing_once
from flow import CLIENT_SECRET, create_subscription

from zoho_broker.services import get_services
from zoho_broker.store import aws


def _count(admin: httpx.Client) -> int:
    return len(admin.get("/admin/subscriptions").json()["subscriptions"])


def test_creating_a_subscription_prefills_defaults_and_masks_the_secret(admin: httpx.Client) -> None:
    created = create_subscription(admin)

    assert created["subscription_id"].startswith("sub_")
    assert created["integration"] == "zoho-crm" and created["version"] == "1"
    assert created["throttling"] == {"requests_per_minute": 100, "max_concurrent_requests": 10}
    assert created["api_url"] == "https://www.zohoapis.com/crm/v8"
    assert created["status"] == "not_connected"
    assert created["client_secret"] == f"zoho…({len(CLIENT_SECRET)} chars)"
    assert created["tokens"] == {"access_token": None, "refresh_token": None}
    assert CLIENT_SECRET not in json.dumps(created)


def test_the_client_secret_lives_in_secrets_manager_not_in_dynamodb(
    admin: httpx.Client, broker_env: dict[str, str]
) -> None:
    created = create_subscription(admin)

    secret = boto3.client("secretsmanager").get_secret_value(SecretId=created["secret_name"])
    items = boto3.client("dynamodb").scan(TableName=broker_env["BROKER_SUBSCRIPTIONS_TABLE"])["Items"]

    assert json.loads(secret["SecretString"])["client_secret"] == CLIENT_SECRET
    assert created["secret_name"] == broker_env["BROKER_SECRET_PREFIX"] + created["subscription_id"]
    assert items and CLIENT_SECRET not in json.dumps(items)


def test_a_subscription_keeps_its_settings(admin: httpx.Client) -> None:
    created = create_subscription(
        admin,
        integration="zoho-commerce",
        api_url="https://commerce.zoho.eu/store/api/v1",
        throttling={"requests_per_minute": 30, "max_concurrent_requests": 2},
        custom_fields={"OrganizationId": "7000001", "RedirectUrl": "https://portal.example.com/cb"},
    )

    shown = admin.get(f"/admin/subscriptions/{created['subscription_id']}").json()

    assert shown["api_url"] == "https://commerce.zoho.eu/store/api/v1"
    assert shown["throttling"] == {"requests_per_minute": 30, "max_concurrent_requests": 2}
    assert shown["custom_fields"] == {
        "OrganizationId": "7000001",
        "RedirectUrl": "https://portal.example.com/cb",
    }


def test_names_are_unique_regardless_of_case(admin: httpx.Client) -> None:
    create_subscription(admin, name="Acme")

    duplicate = admin.post(
        "/admin/subscriptions",
        json={"name": "ACME", "integration": "zoho-crm", "client_id": "c1", "client_secret": "s"},
    )

    assert duplicate.status_code == 409
    assert "already exists" in duplicate.json()["message"]
    assert _count(admin) == 1


BASE = {
    "name": "N",
    "integration": "zoho-crm",
    "client_id": "1000.C",
    "client_secret": "super-secret-value-123",
}


@pytest.mark.parametrize(
    ("body", "status", "mentions"),
    [
        ({k: v for k, v in BASE.items() if k != "client_id"}, 400, "body.client_id"),
        ({k: v for k, v in BASE.items() if k != "client_secret"}, 400, "body.client_secret"),
        ({**BASE, "name": ""}, 400, "body.name"),
        ({**BASE, "integration": "salesforce"}, 400, "Unknown integration"),
        ({**BASE, "version": "42"}, 400, "no version"),
        ({**BASE, "api_url": "ftp://x"}, 400, "body.api_url"),
        ({**BASE, "throttling": {"requests_per_minute": 0, "max_concurrent_requests": 1}}, 400, "throttling"),
        ({**BASE, "custom_fields": {"Nope": "1"}}, 400, "Unknown custom field"),
        ({**BASE, "integration": "zoho-commerce"}, 400, "OrganizationId"),
        ({**BASE, "client_secrets_by_data_centre": {"mars": "x"}}, 400, "Unknown data centre"),
        ({**BASE, "unexpected": 1}, 400, "body.unexpected"),
        ({**BASE, "client_secret": 12345}, 400, "body.client_secret"),
    ],
)
def test_bad_bodies_get_a_clear_4xx_and_create_nothing(
    admin: httpx.Client, body: dict[str, Any], status: int, mentions: str
) -> None:
    answer = admin.post("/admin/subscriptions", json=body)

    assert answer.status_code == status
    assert mentions in answer.text
    assert "super-secret-value-123" not in answer.text
    assert _count(admin) == 0


@pytest.mark.parametrize(
    "raw", [b"{not json", b"", b"[]", b'"text"', b'{"name": "x", "client_secret": "super-secret-value-123"']
)
def test_a_body_that_is_not_a_json_object_is_refused(admin: httpx.Client, raw: bytes) -> None:
    answer = admin.post("/admin/subscriptions", content=raw, headers={"content-type": "application/json"})

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert "super-secret-value-123" not in answer.text


def test_listing_pages_through_subscriptions(admin: httpx.Client) -> None:
    names = {f"Sub {i}" for i in range(5)}
    for name in names:
        create_subscription(admin, name=name)

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = admin.get("/admin/subscriptions", params=params).json()
        seen += [s["name"] for s in page["subscriptions"]]
        assert all(s["tokens"] is None and s["client_secret"] is None for s in page["subscriptions"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert sorted(seen) == sorted(names)


@pytest.mark.parametrize(
    ("query", "mentions"),
    [
        ("limit=0", "query.limit"),
        ("limit=1000", "query.limit"),
        ("limit=x", "query.limit"),
        ("cursor=zzz", "cursor"),
    ],
)
def test_bad_list_parameters_are_refused(admin: httpx.Client, query: str, mentions: str) -> None:
    answer = admin.get(f"/admin/subscriptions?{query}")

    assert answer.status_code == 400
    assert mentions in answer.text


@pytest.mark.parametrize(
    "key",
    [
        {"pk": {"S": "integration#zoho-crm"}},  # another kind of item of the table
        {"pk": {"S": "sub#x"}, "sk": {"S": "x"}},
        {"other": {"S": "sub#x"}},
        {"pk": {"N": "1"}},
        {"pk": "sub#x"},
        ["pk"],
        "pk",
    ],
)
def test_a_cursor_this_api_did_not_hand_out_is_refused_clearly(admin: httpx.Client, key: Any) -> None:
    create_subscription(admin)
    cursor = base64.urlsafe_b64encode(json.dumps(key).encode()).decode()

    answer = admin.get("/admin/subscriptions", params={"cursor": cursor})

    assert answer.status_code == 400, answer.text
    assert answer.json()["message"] == "The cursor is not one this API returned."


def test_unknown_and_malformed_ids_are_4xx(admin: httpx.Client) -> None:
    assert admin.get("/admin/subscriptions/sub_0000000000000000").status_code == 404
    assert admin.get("/admin/subscriptions/bad%20id").status_code == 400
    assert admin.patch("/admin/subscriptions/sub_0000000000000000", json={"name": "x"}).status_code == 404
    assert admin.delete("/admin/subscriptions/sub_0000000000000000").status_code == 404
    assert admin.post("/admin/subscriptions/sub_0000000000000000/connect-links").status_code == 404


def test_updating_changes_only_the_given_fields(admin: httpx.Client) -> None:
    created = create_subscription(admin)
    path = f"/admin/subscriptions/{created['subscription_id']}"

    updated = admin.patch(
        path,
        json={
            "name": "Renamed",
            "throttling": {"requests_per_minute": 5, "max_concurrent_requests": 1},
            "client_secret": "a-brand-new-client-secret",
        },
    )

    assert updated.status_code == 200, updated.text
    shown = admin.get(path).json()
    assert shown["name"] == "Renamed"
    assert shown["throttling"] == {"requests_per_minute": 5, "max_concurrent_requests": 1}
    assert shown["client_id"] == created["client_id"]
    assert shown["client_secret"] == f"a-br…({len('a-brand-new-client-secret')} chars)"
    assert "a-brand-new-client-secret" not in updated.text
    # The old name is free again; the new one is taken.
    create_subscription(admin, name="Acme CRM")
    assert admin.post("/admin/subscriptions", json={**BASE, "name": "renamed"}).status_code == 409


def test_renaming_onto_a_taken_name_is_a_conflict_and_changes_nothing(admin: httpx.Client) -> None:
    create_subscription(admin, name="Taken")
    other = create_subscription(admin, name="Other")

    answer = admin.patch(f"/admin/subscriptions/{other['subscription_id']}", json={"name": "taken"})

    assert answer.status_code == 409
    assert admin.get(f"/admin/subscriptions/{other['subscription_id']}").json()["name"] == "Other"


def test_a_rename_dynamodb_cancels_for_a_conflicting_write_says_try_again_not_gone(
    admin: httpx.Client,
) -> None:
    # Given a subscription, and DynamoDB cancelling the rename's transaction: another write to the item
    sid = create_subscription(admin, name="Before")["subscription_id"]

    # When an operator renames it
    cancelled = "TransactionCanceledException"
    with failing_once(
        aws.dynamodb(),
        "TransactWriteItems",
        cancelled,
        "Transaction cancelled",
        reasons=("TransactionConflict",),
    ) as failed:
        answer = admin.patch(f"/admin/subscriptions/{sid}", json={"name": "After"})
    assert failed

    # Then they are told to try again (not that it does not exist), nothing changed, and trying again works
    assert (answer.status_code, answer.json()["error"]) == (503, "service_unavailable")
    assert admin.get(f"/admin/subscriptions/{sid}").json()["name"] == "Before"
    assert admin.patch(f"/admin/subscriptions/{sid}", json={"name": "After"}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"integration": "zoho-commerce"},
        {"custom_fields": {"Nope": "x"}},
        {"api_url": "nope"},
        {},
        {"name": None},
        {"throttling": None},
    ],
)
def test_bad_updates_are_refused_and_change_nothing(admin: httpx.Client, body: dict[str, Any]) -> None:
    created = create_subscription(admin)
    path = f"/admin/subscriptions/{created['subscription_id']}"
    before = admin.get(path).json()

    answer = admin.patch(path, json=body)

    assert answer.status_code == 400
    assert admin.get(path).json() == before


def test_deleting_removes_the_subscription_and_schedules_its_secret_for_deletion(admin: httpx.Client) -> None:
    created = create_subscription(admin)
    path = f"/admin/subscriptions/{created['subscription_id']}"

    assert admin.delete(path).status_code == 204

    assert admin.get(path).status_code == 404
    described = boto3.client("secretsmanager").describe_secret(SecretId=created["secret_name"])
    assert "DeletedDate" in described
    create_subscription(admin)  # the name is free again


def test_a_connect_link_is_a_short_lived_url_on_the_broker(admin: httpx.Client, gateway: Any) -> None:
    created = create_subscription(admin)

    started = int(time.time())
    link = admin.post(f"/admin/subscriptions/{created['subscription_id']}/connect-links")
    ended = int(time.time())

    assert link.status_code == 201
    body = link.json()
    assert body["url"].startswith(f"{gateway.base_url}/connect/")
    assert body["subscription_id"] == created["subscription_id"]
    ttl = get_services().settings.connect_link_ttl_seconds  # a day unless the stack says otherwise
    assert started + ttl <= datetime.fromisoformat(body["expires_at"]).timestamp() <= ended + ttl


def test_the_catalogue_and_the_openapi_document_are_served(admin: httpx.Client) -> None:
    catalogue = admin.get("/admin/integrations").json()
    document = admin.get("/admin/openapi.json").json()

    assert [i["id"] for i in catalogue["integrations"]] == [
        "zoho-crm",
        "zoho-commerce",
        "zoho-books",
        "zoho-inventory",
        "zoho-desk",
        "bigin",
    ]
    assert "/admin/subscriptions" in document["paths"]
    assert "/admin/subscriptions/{subscription_id}/connect-links" in document["paths"]
    assert "SubscriptionCreate" in json.dumps(document["components"])


def test_the_openapi_document_declares_the_answers_the_api_gives(admin: httpx.Client) -> None:
    document = admin.get("/admin/openapi.json").json()
    paths = document["paths"]
    schemas = document["components"]["schemas"]

    assert "422" not in json.dumps(paths) and "HTTPValidationError" not in json.dumps(document)
    assert set(paths["/admin/subscriptions"]["post"]["responses"]) == {
        "201",
        "400",
        "409",
        "413",
        "415",
        "503",
    }
    assert set(paths["/admin/subscriptions/{subscription_id}"]["delete"]["responses"]) == {
        "204",
        "400",
        "404",
        "409",
        "503",
    }
    assert "content" not in paths["/admin/subscriptions/{subscription_id}"]["delete"]["responses"]["204"]
    created = paths["/admin/subscriptions"]["post"]["responses"]["201"]["content"]["application/json"]
    assert created["schema"] == {"$ref": "#/components/schemas/SubscriptionView"}
    refused = paths["/admin/subscriptions/{subscription_id}/token"]["get"]["responses"]["409"]
    assert refused["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    update = schemas["SubscriptionUpdate"]
    assert update["minProperties"] == 1
    # Fields are left out, never null; but null is how an operator clears the organization binding.
    assert "null" not in json.dumps({k: v for k, v in update["properties"].items() if k != "organization"})
    assert update["properties"]["organization"]["type"] == "null"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/nothing-here"),
        ("POST", "/admin/subscriptions/sub_0000000000000000/nothing-here"),
        ("DELETE", "/admin/subscriptions/"),
    ],
)
def test_an_unknown_route_is_a_json_404(admin: httpx.Client, method: str, path: str) -> None:
    answer = admin.request(method, path)

    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"error": "not_found", "message": "The admin API has no such route."}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/admin/subscriptions", "GET, POST"),
        ("POST", "/admin/subscriptions/sub_0000000000000000", "DELETE, GET, PATCH"),
        ("GET", "/admin/subscriptions/sub_0000000000000000/refresh", "POST"),
        ("DELETE", "/admin/openapi.json", "GET"),
    ],
)
def test_a_known_path_asked_with_another_method_is_a_json_405_with_allow(
    admin: httpx.Client, method: str, path: str, allowed: str
) -> None:
    answer = admin.request(method, path, json={"name": "x"})

    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed
    assert answer.json() == {
        "error": "method_not_allowed",
        "message": f"{method} is not allowed here: use {allowed}.",
    }

"""Zoho's Self Client: the account owner generates a grant code in the API Console; the operator submits
it and the broker exchanges it at the data centre that issued it, as the callback does for a consent."""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
import httpx
import pytest
from flow import CLIENT_SECRET, assert_never_shown, create_subscription

from broker_local.zoho_standin import ZohoStandIn
from tests.integration.test_refresh import Announcements

CLIENT_ID = "1000.SELFCLIENT0123456789"
SCOPE = "ZohoCRM.modules.ALL,ZohoCRM.settings.ALL"


def _self_client_subscription(admin: httpx.Client, name: str = "Own CRM") -> str:
    version = {
        "version": "self",
        "authorization_type": "self_client",
        "default_scopes": SCOPE.split(","),
        "default_api_url": "https://www.zohoapis.com/crm/v8",
        "default_throttling": {"requests_per_minute": 100, "max_concurrent_requests": 10},
    }
    added = admin.post("/admin/integrations/zoho-crm/versions", json=version)
    assert added.status_code in (201, 409), added.text  # 409: added by an earlier call of this test
    created = create_subscription(admin, name=name, version="self", client_id=CLIENT_ID)
    return str(created["subscription_id"])


def _submit(admin: httpx.Client, sid: str, code: str, data_centre: str) -> httpx.Response:
    return admin.post(
        f"/admin/subscriptions/{sid}/grant-code", json={"code": code, "data_centre": data_centre}
    )


def test_a_grant_code_is_exchanged_at_its_data_centre_and_connects_the_subscription(
    admin: httpx.Client, zoho: ZohoStandIn, stack: Any
) -> None:
    announcements = Announcements()
    sid = _self_client_subscription(admin)
    code = zoho.issue_self_client_code(client_id=CLIENT_ID, scope=SCOPE, data_centre="eu")

    answer = _submit(admin, sid, code, "eu")
    again = _submit(
        admin, sid, zoho.issue_self_client_code(client_id=CLIENT_ID, scope=SCOPE, data_centre="us"), "us"
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "connected"
    assert answer.json()["data_centre"] == "eu" and answer.json()["api_domain"] == zoho.accounts_servers["eu"]
    exchange = next(r for r in zoho.requests if r.path == "/oauth/v2/token")
    assert exchange.data_centre == "eu" and "redirect_uri" not in exchange.params
    assert admin.get(f"/admin/subscriptions/{sid}/token").json()["data_centre"] == "us"
    # Announced as a consent's connection would be: a second code replaced a live connection.
    assert again.status_code == 200 and again.json()["reconnected_from"] == "eu"
    events = [e for e in announcements.read() if e["detail-type"] == "SubscriptionReconnected"]
    assert [(e["detail"]["previous_data_centre"], e["detail"]["new_data_centre"]) for e in events] == [
        ("eu", "us")
    ]


def test_a_code_from_another_data_centre_or_used_twice_gets_a_clear_error(
    admin: httpx.Client, zoho: ZohoStandIn
) -> None:
    sid = _self_client_subscription(admin)
    code = zoho.issue_self_client_code(client_id=CLIENT_ID, scope=SCOPE, data_centre="eu")

    wrong_place = _submit(admin, sid, code, "us")
    refused = admin.get(f"/admin/subscriptions/{sid}").json()
    used = _submit(admin, sid, code, "eu")
    used_again = _submit(admin, sid, code, "eu")
    unknown = _submit(admin, sid, code, "xx")

    assert wrong_place.status_code == 502 and wrong_place.json()["error"] == "zoho_error"
    assert "not generated in the US data centre" in wrong_place.json()["message"]
    assert refused["status"] == "not_connected" and refused["last_error"] == "grant code failed: invalid_code"
    assert used.status_code == 200
    assert used_again.status_code == 502 and "already used" in used_again.json()["message"]
    assert unknown.status_code == 400 and "known: eu, us" in unknown.json()["message"]
    # The refused second use is recorded; the connection it could not replace stays.
    shown = admin.get(f"/admin/subscriptions/{sid}").json()
    assert shown["status"] == "connected" and shown["last_error"] == "grant code failed: invalid_code"


def test_each_authorization_type_refuses_the_other_ones_way_in(
    admin: httpx.Client, zoho: ZohoStandIn
) -> None:
    self_client = _self_client_subscription(admin)
    consent = create_subscription(admin, name="Consent CRM", version="1")["subscription_id"]
    code = zoho.issue_self_client_code(client_id=CLIENT_ID, scope=SCOPE, data_centre="us")

    link = admin.post(f"/admin/subscriptions/{self_client}/connect-links")
    grant = _submit(admin, consent, code, "us")

    assert link.status_code == 409 and "grant-code" in link.json()["message"]
    assert grant.status_code == 409 and "connect links" in grant.json()["message"]


def test_neither_the_grant_code_nor_the_client_secret_is_ever_logged_or_echoed(
    admin: httpx.Client,
    zoho: ZohoStandIn,
    broker_env: dict[str, str],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="zoho-broker")
    sid = _self_client_subscription(admin)
    used = zoho.issue_self_client_code(client_id=CLIENT_ID, scope=SCOPE, data_centre="eu")
    elsewhere = zoho.issue_self_client_code(client_id=CLIENT_ID, scope=SCOPE, data_centre="eu")
    seen = [
        _submit(admin, sid, elsewhere, "us").text,  # refused: another data centre
        _submit(admin, sid, used, "eu").text,
        _submit(admin, sid, used, "eu").text,  # refused: used
        _submit(admin, sid, used, "xx").text,  # refused: unknown data centre
        admin.post(f"/admin/subscriptions/{sid}/grant-code", json={"code": used, "data_centre": 5}).text,
        admin.post(f"/admin/subscriptions/{sid}/grant-code", json={"code": used, "extra": used}).text,
        admin.get(f"/admin/subscriptions/{sid}").text,
    ]
    seen.append(
        json.dumps(boto3.client("dynamodb").scan(TableName=broker_env["BROKER_SUBSCRIPTIONS_TABLE"])["Items"])
    )

    assert "subscription connected" in [record.getMessage() for record in caplog.records]
    assert_never_shown(
        seen,
        {"grant code": used, "other grant code": elsewhere, "client secret": CLIENT_SECRET},
        capfd=capfd,
        caplog=caplog,
    )

"""Secrets (client secret, grant code, tokens) never reach logs, DynamoDB items, pages or API answers."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from flow import (
    CLIENT_SECRET,
    assert_never_shown,
    connect_link,
    create_subscription,
    decide_at_zoho,
    open_link,
)

from broker_local.zoho_standin import ZohoStandIn
from tests.held_secrets import held_secret


def test_a_connect_journey_leaks_no_secret(
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    broker_env: dict[str, str],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A full connect journey leaves no secret anywhere a person or a log reader looks.
    # All of the broker's own logging; libraries at INFO, as deployed (botocore's DEBUG dumps request bodies).
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="zoho-broker")
    seen: list[str] = []
    created = create_subscription(admin, client_secrets_by_data_centre={"eu": "eu-only-client-secret-987654"})
    seen.append(json.dumps(created))
    started = open_link(browser, connect_link(admin, created["subscription_id"]))
    seen.append(started.text + json.dumps(dict(started.headers)))
    callback = decide_at_zoho(browser, started.headers["location"], data_centre="eu")
    code = parse_qs(urlsplit(callback).query)["code"][0]
    page = browser.get(callback)
    assert page.status_code == 200
    seen.append(page.text)
    seen.append(browser.get(callback).text)  # the replay's error page
    seen.append(admin.get(f"/admin/subscriptions/{created['subscription_id']}").text)
    seen.append(admin.get("/admin/subscriptions").text)
    seen.append(admin.patch(f"/admin/subscriptions/{created['subscription_id']}", json={"name": 5}).text)
    rotated = {"client_secrets_by_data_centre": {"eu": "eu-rotated-client-secret-55555"}}
    seen.append(admin.patch(f"/admin/subscriptions/{created['subscription_id']}", json=rotated).text)

    connected = held_secret(created["secret_name"])
    path = f"/admin/subscriptions/{created['subscription_id']}"
    seen.append(admin.post(f"{path}/refresh").text)  # the refresher's path, through the API
    refreshed = held_secret(created["secret_name"])
    seen.append(admin.post(f"{path}/revoke").text)
    dynamodb = boto3.client("dynamodb")
    for table in ("BROKER_SUBSCRIPTIONS_TABLE", "BROKER_FLOWS_TABLE"):
        seen.append(json.dumps(dynamodb.scan(TableName=broker_env[table])["Items"]))

    secrets = {
        "client secret": CLIENT_SECRET,
        "per-DC client secret": "eu-only-client-secret-987654",
        "rotated per-DC client secret": "eu-rotated-client-secret-55555",
        "access token": connected["access_token"],
        "refreshed access token": refreshed["access_token"],
        "refresh token": connected["refresh_token"],
        "grant code": code,
    }
    assert refreshed["access_token"] != connected["access_token"]
    assert connected["client_secrets_by_data_centre"] == {"eu": "eu-rotated-client-secret-55555"}
    # The logs were captured, and they say what happened.
    messages = [record.getMessage() for record in caplog.records]
    assert "subscription connected" in messages
    assert "subscription disconnected" in messages
    assert_never_shown(seen, secrets, capfd=capfd, caplog=caplog)
    # The token exchange used the EU secret at the EU accounts server.
    exchange = next(r for r in zoho.requests if r.path == "/oauth/v2/token")
    assert exchange.data_centre == "eu" and exchange.params["client_secret"] == "eu-only-client-secret-987654"
    # The refresh after the rotation used the rotated one.
    [renewal] = [r for r in zoho.requests if r.params.get("grant_type") == "refresh_token"]
    assert renewal.params["client_secret"] == "eu-rotated-client-secret-55555"

"""The consent journey end to end: broker routes through the Lambda handlers, AWS in moto, and the
Zoho stand-in over real HTTP, for both integrations and two data centres."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import boto3
import httpx
import pytest
from aws_calls import counted_calls, failing_once
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from botocore.exceptions import ClientError
from flow import (
    connect,
    connect_link,
    create_subscription,
    decide_at_zoho,
    logged_once,
    open_link,
    page_message,
    page_title,
)
from stored import expire_flow

from broker_local.template import Stack
from broker_local.zoho_standin import ZohoStandIn
from tests.held_secrets import held_secret
from tests.whoami import whoami
from zoho_broker.logic import connect as connect_logic
from zoho_broker.state import verify
from zoho_broker.store import aws


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _callback_url(
    admin: httpx.Client, browser: httpx.Client, subscription_id: str, data_centre: str = "us"
) -> str:
    started = open_link(browser, connect_link(admin, subscription_id))
    return decide_at_zoho(browser, started.headers["location"], data_centre=data_centre)


@pytest.mark.parametrize(
    ("integration", "custom_fields", "data_centre", "title"),
    [
        ("zoho-crm", {}, "us", "Connected to Zoho CRM (US): Acme Ltd"),
        ("zoho-crm", {}, "eu", "Connected to Zoho CRM (EU): Acme Ltd"),
        (
            "zoho-commerce",
            {"OrganizationId": "4000000001"},
            "eu",
            "Connected to Zoho Commerce (EU): Acme Ltd",
        ),
        (
            "zoho-commerce",
            {"OrganizationId": "4000000001"},
            "us",
            "Connected to Zoho Commerce (US): Acme Ltd",
        ),
    ],
)
def test_a_person_connects_a_subscription_and_the_broker_holds_working_tokens(
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    stack: Stack,
    broker_env: dict[str, str],
    integration: str,
    custom_fields: dict[str, str],
    data_centre: str,
    title: str,
) -> None:
    subscription = create_subscription(admin, integration=integration, custom_fields=custom_fields)
    assert subscription["status"] == "not_connected"

    started = int(time.time())
    page = connect(admin, browser, subscription["subscription_id"], data_centre=data_centre)
    ended = int(time.time())

    assert page.status_code == 200
    assert page_title(page) == title
    assert "You may close this page." in page.text
    view = admin.get(f"/admin/subscriptions/{subscription['subscription_id']}").json()
    assert view["status"] == "connected"
    assert view["data_centre"] == data_centre
    assert view["api_domain"] == zoho.accounts_servers[data_centre]  # the stand-in serves the API there
    expires_at = datetime.fromisoformat(view["access_token_expires_at"]).timestamp()
    assert started + 3600 <= expires_at <= ended + 3600  # Zoho's hour, counted from the exchange
    secret = held_secret(broker_env["BROKER_SECRET_PREFIX"] + subscription["subscription_id"])
    assert secret["refresh_token"].startswith("1000.")
    assert view["tokens"]["refresh_token"] == f"1000…({len(secret['refresh_token'])} chars)"
    # The tokens work at the data centre that issued them, and only there.
    issuing, other = (
        zoho.accounts_servers[data_centre],
        zoho.accounts_servers["eu" if data_centre == "us" else "us"],
    )
    assert whoami(issuing, secret["access_token"]).status_code == 200
    assert whoami(other, secret["access_token"]).status_code == 401


def test_the_connect_link_redirects_to_the_rendered_authorization_url_with_a_bound_state(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, gateway: Any
) -> None:
    subscription = create_subscription(admin)

    started = open_link(browser, connect_link(admin, subscription["subscription_id"]))

    assert started.status_code == 302
    location = urlsplit(started.headers["location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}" == zoho.accounts_servers["us"]
    assert location.path == "/oauth/v2/auth"
    assert query["client_id"] == ["1000.CLIENTID0123456789"]
    assert query["redirect_uri"] == [f"{gateway.base_url}/oauth/callback"]
    assert query["access_type"] == ["offline"]
    assert query["state"][0].split(".")[1] == subscription["subscription_id"]
    cookie = started.headers["set-cookie"]
    assert "zoho_broker_binding=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_a_tampered_state_is_refused_before_anything_is_consumed_or_sent(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    subscription = create_subscription(admin)
    callback = _callback_url(admin, browser, subscription["subscription_id"])
    state = parse_qs(urlsplit(callback).query)["state"][0]

    refused = browser.get(
        _with_query(callback, state=state[:-2] + ("AA" if not state.endswith("AA") else "BB"))
    )

    assert refused.status_code == 400
    assert "not made by this broker" in refused.text
    assert zoho.token_call_count == 0
    assert browser.get(callback).status_code == 200  # the genuine state still works


def test_a_replayed_callback_never_exchanges_twice(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    subscription = create_subscription(admin)
    callback = _callback_url(admin, browser, subscription["subscription_id"])
    assert browser.get(callback).status_code == 200

    replay = browser.get(callback)

    assert replay.status_code == 400
    assert "already completed or has expired" in replay.text
    assert "Traceback" not in replay.text
    assert zoho.token_call_count == 1


def test_an_expired_state_is_refused_even_if_ttl_has_not_deleted_it(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, broker_env: dict[str, str]
) -> None:
    subscription = create_subscription(admin)
    callback = _callback_url(admin, browser, subscription["subscription_id"])
    nonce = parse_qs(urlsplit(callback).query)["state"][0].split(".")[0]
    expire_flow(broker_env["BROKER_FLOWS_TABLE"], {"pk": {"S": f"state#{nonce}"}})

    refused = browser.get(callback)

    assert refused.status_code == 400
    assert "expired" in refused.text
    assert zoho.token_call_count == 0


@pytest.mark.parametrize(("flow", "status"), [("connect link", 410), ("sign-in", 400)])
def test_a_connect_link_or_sign_in_is_refused_from_its_expiry_second_on(
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    broker_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    flow: str,
    status: int,
) -> None:
    # Given a connect link, or a sign-in at Zoho's callback, whose expiry is the second the clock reads
    sid = create_subscription(admin)["subscription_id"]
    link = connect_link(admin, sid)
    if flow == "sign-in":
        callback = decide_at_zoho(browser, open_link(browser, link).headers["location"])
        key = {"pk": {"S": f"state#{parse_qs(urlsplit(callback).query)['state'][0].split('.')[0]}"}}
    else:
        [item] = boto3.client("dynamodb").scan(TableName=broker_env["BROKER_FLOWS_TABLE"])["Items"]
        key = {"pk": item["pk"]}
    expiry = int(time.time()) + 60
    expire_flow(broker_env["BROKER_FLOWS_TABLE"], key, at=expiry)
    monkeypatch.setattr(connect_logic, "utc_now", lambda: datetime.fromtimestamp(expiry, UTC))

    # When it is used at that second
    answer = browser.get(callback) if flow == "sign-in" else open_link(browser, link)

    # Then it is refused as expired, and no code goes to Zoho
    assert answer.status_code == status
    assert "expired" in answer.text
    assert zoho.token_call_count == 0


def test_a_callback_from_another_browser_is_refused(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, gateway: Any
) -> None:
    subscription = create_subscription(admin)
    callback = _callback_url(admin, browser, subscription["subscription_id"])

    with httpx.Client() as other_browser:
        refused = other_browser.get(callback)

    assert refused.status_code == 400
    assert "started in another browser" in refused.text
    assert zoho.token_call_count == 0


def test_a_state_bound_to_another_subscription_is_refused(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, broker_env: dict[str, str]
) -> None:
    first = create_subscription(admin, name="First")
    second = create_subscription(admin, name="Second")
    callback = _callback_url(admin, browser, first["subscription_id"])
    state = parse_qs(urlsplit(callback).query)["state"][0]
    nonce, _, signature = state.split(".")

    # The signed subscription cannot be swapped...
    moved = browser.get(_with_query(callback, state=f"{nonce}.{second['subscription_id']}.{signature}"))
    assert moved.status_code == 400
    # ...and a stored state that points elsewhere is not trusted either.
    boto3.client("dynamodb").update_item(
        TableName=broker_env["BROKER_FLOWS_TABLE"],
        Key={"pk": {"S": f"state#{nonce}"}},
        UpdateExpression="SET subscription_id = :other",
        ExpressionAttributeValues={":other": {"S": second["subscription_id"]}},
    )
    redirected = browser.get(callback)

    assert redirected.status_code == 400
    assert page_message(redirected) == "This sign-in belongs to another subscription's connect link."
    assert zoho.token_call_count == 0
    for subscription in (first, second):
        view = admin.get(f"/admin/subscriptions/{subscription['subscription_id']}").json()
        assert view["status"] == "not_connected"


def test_an_accounts_server_off_the_allow_list_never_receives_the_code(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    subscription = create_subscription(admin)
    callback = _callback_url(admin, browser, subscription["subscription_id"])

    with ZohoStandIn({"us": 0}) as attacker:
        refused = browser.get(
            _with_query(callback, **{"accounts-server": attacker.accounts_servers["us"], "location": "us"})
        )
        assert attacker.requests == []

    assert refused.status_code == 400
    assert "is not one of Zoho" in refused.text
    assert zoho.token_call_count == 0


@pytest.mark.parametrize(
    ("fault", "status", "message"),
    [
        ("invalid_code", 502, "Zoho rejected the authorization code"),
        ("server_error", 503, "Zoho answered HTTP 500"),
        ("unavailable", 503, "Zoho answered HTTP 503"),
        ("timeout", 503, "Zoho did not answer in time"),
        ("rate_limited", 503, "too many requests"),
    ],
)
def test_a_failing_token_exchange_shows_a_clear_page_and_changes_nothing(
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    stack: Stack,
    broker_env: dict[str, str],
    fault: str,
    status: int,
    message: str,
) -> None:
    subscription = create_subscription(admin)
    callback = _callback_url(admin, browser, subscription["subscription_id"])
    zoho.inject_fault(fault)

    page = browser.get(callback)

    assert page.status_code == status
    assert message in page.text
    assert "Traceback" not in page.text
    view = admin.get(f"/admin/subscriptions/{subscription['subscription_id']}").json()
    assert view["status"] == "not_connected"
    assert (
        held_secret(broker_env["BROKER_SECRET_PREFIX"] + subscription["subscription_id"]).get("refresh_token")
        is None
    )


def test_a_new_refresh_token_that_can_be_neither_stored_nor_revoked_is_reported_masked(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a consent whose code Zoho exchanges, then a secret write refused and Zoho down for the revocation
    caplog.set_level(logging.INFO)
    sid = create_subscription(admin)["subscription_id"]
    callback = _callback_url(admin, browser, sid)

    def refused(**_: Any) -> None:
        zoho.inject_fault("unavailable")  # the next call to the accounts server is the revocation
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "PutSecretValue")

    client = aws.secretsmanager()
    event = "before-parameter-build.secrets-manager.PutSecretValue"
    client.meta.events.register(event, refused, unique_id="refused-write")
    try:
        page = browser.get(callback)
    finally:
        client.meta.events.unregister(event, unique_id="refused-write")

    # Then the person is told to try again, nothing is connected, and operators get one error naming
    # the subscription with the token masked (a user holds at most 20 refresh tokens per client)
    assert page.status_code == 503
    assert admin.get(f"/admin/subscriptions/{sid}").json()["status"] == "not_connected"
    [revocation] = [r for r in zoho.requests if r.path == "/oauth/v2/token/revoke"]
    token = revocation.params["token"]
    formatter = LambdaPowertoolsFormatter()
    [line] = [
        json.loads(formatter.format(record))
        for record in caplog.records
        if record.getMessage() == "a new refresh token could neither be stored nor revoked"
    ]
    assert (line["level"], line["subscription_id"]) == ("ERROR", sid)
    assert line["token"] == f"{token[:4]}…({len(token)} chars)"
    assert token not in caplog.text


def test_a_person_who_denies_access_sees_a_friendly_page(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    subscription = create_subscription(admin)
    started = open_link(browser, connect_link(admin, subscription["subscription_id"]))

    callback = decide_at_zoho(browser, started.headers["location"], decision="deny")
    page = browser.get(callback)

    assert page.status_code == 200
    assert page_title(page) == "Access was not granted"
    assert zoho.token_call_count == 0
    # The operator reads it in the subscription's life (docs/operations.md)
    line = logged_once(caplog, "consent denied")
    assert (line["levelname"], line["subscription_id"]) == ("INFO", subscription["subscription_id"])
    assert (
        admin.get(f"/admin/subscriptions/{subscription['subscription_id']}").json()["status"]
        == "not_connected"
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "state"),
        ("code=abc", "state"),
        ("state=" + "x" * 300, "state"),
        ("state=a.b.c&error=%3Cscript%3E", "error"),
        ("state=a.b.c&location=e%20u", "location"),
    ],
)
def test_a_malformed_callback_gets_a_clear_page_not_an_error(
    browser: httpx.Client, query: str, field: str
) -> None:
    page = browser.get(f"/oauth/callback?{query}")

    assert page.status_code == 400
    assert page_title(page) == "This link is incomplete"
    assert field in page.text
    assert "<script>" not in page.text


def test_a_callback_without_code_or_error_is_refused(admin: httpx.Client, browser: httpx.Client) -> None:
    subscription = create_subscription(admin)
    callback = _callback_url(admin, browser, subscription["subscription_id"])
    parts = urlsplit(callback)
    state = parse_qs(parts.query)["state"][0]

    page = browser.get(urlunsplit(parts._replace(query=urlencode({"state": state}))))

    assert page.status_code == 400
    assert "neither a code nor an error" in page.text


@pytest.mark.parametrize(
    ("link", "status", "title", "message"),
    [
        ("nope", 410, "This connect link can&#x27;t be used", "This connect link is not valid."),
        (
            "x" * 40,
            410,
            "This connect link can&#x27;t be used",
            "This connect link has expired or was already used.",
        ),
        ("%00%01", 410, "This connect link can&#x27;t be used", "This connect link is not valid."),
        # longer than any link the broker makes
        (
            "a" * 129,
            400,
            "This link is incomplete",
            "The address is missing or has an invalid value for: path.link.",
        ),
    ],
)
def test_an_unknown_or_malformed_connect_link_is_refused(
    browser: httpx.Client, link: str, status: int, title: str, message: str
) -> None:
    page = browser.get(f"/connect/{link}")

    assert (page.status_code, page_title(page), page_message(page)) == (status, title, message)
    assert "Ask whoever sent you the connect link for a new one" in page.text


def test_a_connect_link_works_once(admin: httpx.Client, browser: httpx.Client) -> None:
    subscription = create_subscription(admin)
    link = connect_link(admin, subscription["subscription_id"])

    assert open_link(browser, link).status_code == 302
    again = open_link(browser, link)

    assert again.status_code == 410
    assert "expired or was already used" in again.text


def test_a_connect_link_pressed_while_dynamodb_throttles_says_try_again_and_still_works(
    admin: httpx.Client, browser: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    # Given DynamoDB throttling the write that uses up the link, once
    caplog.set_level(logging.INFO)
    link = connect_link(admin, create_subscription(admin)["subscription_id"])
    throttling = "ProvisionedThroughputExceededException"
    with failing_once(aws.dynamodb(), "TransactWriteItems", throttling) as failed:
        busy = open_link(browser, link)
    assert failed

    # Then the person is asked to try again, and the same link then works
    assert (busy.status_code, page_title(busy)) == (503, "The broker is busy right now")
    assert open_link(browser, link).status_code == 302
    # and the operator reads which AWS error it was
    line = logged_once(caplog, "an AWS service failed")
    assert line["error"] == "ClientError"


def test_an_expired_connect_link_is_refused(
    admin: httpx.Client, browser: httpx.Client, broker_env: dict[str, str]
) -> None:
    subscription = create_subscription(admin)
    link = connect_link(admin, subscription["subscription_id"])
    for item in boto3.client("dynamodb").scan(TableName=broker_env["BROKER_FLOWS_TABLE"])["Items"]:
        expire_flow(broker_env["BROKER_FLOWS_TABLE"], {"pk": item["pk"]})

    page = open_link(browser, link)

    assert page.status_code == 410


def test_the_state_in_the_authorization_url_verifies_with_the_stacks_signing_key(
    admin: httpx.Client, browser: httpx.Client, broker_env: dict[str, str]
) -> None:
    subscription = create_subscription(admin)
    started = open_link(browser, connect_link(admin, subscription["subscription_id"]))
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    key = boto3.client("secretsmanager").get_secret_value(SecretId=broker_env["BROKER_STATE_KEY_SECRET_ID"])

    assert verify(key["SecretString"].encode(), state).subscription_id == subscription["subscription_id"]


def test_opening_or_previewing_a_connect_link_uses_nothing_up(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    subscription = create_subscription(admin, name="Acme <Retail>")
    link = connect_link(admin, subscription["subscription_id"])

    previews = [httpx.get(link) for _ in range(3)]  # chat and mail scanners fetch links, too

    page = previews[-1]
    assert page.status_code == 200
    assert page_title(page) == "Connect Zoho CRM"
    assert "Acme &lt;Retail&gt;" in page.text
    assert '<button type="submit">Continue to Zoho</button>' in page.text
    policy = page.headers["content-security-policy"]
    assert "form-action 'self' " + " ".join(zoho.accounts_servers.values()) in policy
    assert "script-src" not in policy
    assert "default-src 'none'" in policy
    assert open_link(browser, link).status_code == 302  # the person's Continue still works, once


def test_every_item_a_connection_reads_is_read_strongly_consistent(
    admin: httpx.Client, browser: httpx.Client
) -> None:
    # DynamoDB answers from a possibly stale copy unless asked not to, and a link or sign-in is read
    # moments after it was written. Moto always reads the latest, so the requests must say it.
    sid = create_subscription(admin)["subscription_id"]

    with counted_calls(aws.dynamodb(), "GetItem") as reads:
        assert connect(admin, browser, sid).status_code == 200

    read = {call["Key"]["pk"]["S"].partition("#")[0] for call in reads}
    assert {"link", "sub"} <= read
    assert [call["Key"]["pk"]["S"] for call in reads if call.get("ConsistentRead") is not True] == []

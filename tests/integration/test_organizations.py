"""Connections verified and bound to their Zoho organization: the version's verification call right after
the code exchange, the same organization reconnecting, another one refused (its new refresh token revoked
at Zoho, the existing connection kept), a cleared binding accepting it, and a failed verification keeping
the connection with its reason. Through the Lambda handlers, AWS in moto, the Zoho stand-in over HTTP."""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
import httpx
import pytest
from flow import (
    CLIENT_SECRET,
    assert_never_shown,
    connect,
    connect_link,
    create_subscription,
    decide_at_zoho,
    logged_once,
    open_link,
    page_title,
)

from broker_local.zoho_standin import ZohoStandIn
from tests.held_secrets import held_secret

ACME = {"id": "4000000001", "name": "Acme Ltd"}
GLOBEX = {"id": "4000000002", "name": "Globex Corporation"}
GLOBEX_ACCOUNT = "admin@globex.example"
CLIENT_ID = "1000.CLIENTID0123456789"
SCOPE = "ZohoCRM.modules.ALL,ZohoCRM.org.READ"


def _view(admin: httpx.Client, sid: str) -> dict[str, Any]:
    answer = admin.get(f"/admin/subscriptions/{sid}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _organization(view: dict[str, Any]) -> dict[str, str] | None:
    bound = view["organization"]
    return None if bound is None else {"id": bound["id"], "name": bound["name"]}


def _org_through_api(zoho: ZohoStandIn, admin: httpx.Client, sid: str) -> str:
    """What a sync job sees: the broker's access token, at the API the token answer pointed to."""
    token = admin.get(f"/admin/subscriptions/{sid}/token").json()
    answer = httpx.get(
        f"{token['api_domain']}/crm/v8/org",
        headers={"Authorization": f"Zoho-oauthtoken {token['access_token']}"},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["org"][0]["company_name"])


def _bound_to_acme(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> tuple[dict[str, Any], str, dict[str, Any], set[str]]:
    """A subscription connected by Acme's account: it, its id, its secret and the live refresh tokens."""
    created = create_subscription(admin)
    assert connect(admin, browser, created["subscription_id"]).status_code == 200
    return (
        created,
        created["subscription_id"],
        held_secret(created["secret_name"]),
        zoho.live_refresh_tokens(CLIENT_ID),
    )


def test_a_connection_records_its_organization_and_the_same_one_reconnects(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    sid = create_subscription(admin)["subscription_id"]

    first = connect(admin, browser, sid, data_centre="eu")
    bound = _view(admin, sid)
    again = connect(admin, browser, sid, data_centre="eu")
    after = _view(admin, sid)

    assert page_title(first) == "Connected to Zoho CRM (EU): Acme Ltd"
    assert _organization(bound) == ACME and bound["organization"]["verified_at"]
    assert bound["organization_check_error"] is None
    verification = [r for r in zoho.api.requests if r.path == "/crm/v8/org"]
    assert [(r.data_centre, r.method) for r in verification] == [("eu", "GET"), ("eu", "GET")]
    assert page_title(again) == "Connected to Zoho CRM (EU): Acme Ltd"
    assert after["status"] == "connected" and _organization(after) == ACME
    assert after["connected_at"] >= bound["connected_at"] and after["last_error"] is None


def test_another_organizations_consent_is_refused_and_its_token_revoked(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a bound subscription, when another organization consents, then it is refused and its token revoked.
    caplog.set_level(logging.INFO)
    created, sid, before, live_before = _bound_to_acme(admin, browser, zoho)
    exchanges_before = sum(1 for r in zoho.requests if r.params.get("grant_type") == "authorization_code")

    refused = connect(admin, browser, sid, account=GLOBEX_ACCOUNT)

    # The person is told, naming both organizations.
    assert refused.status_code == 409
    assert page_title(refused) == "This Zoho account belongs to another organization"
    assert "Acme Ltd (id 4000000001)" in refused.text and "Globex Corporation (id 4000000002)" in refused.text
    # Zoho issued a refresh token for Globex; it was revoked at once, and Acme's is still live.
    exchanges = sum(1 for r in zoho.requests if r.params.get("grant_type") == "authorization_code")
    assert exchanges == exchanges_before + 1
    revocations = [r for r in zoho.requests if r.path == "/oauth/v2/token/revoke"]
    assert revocations and revocations[-1].params["token"] not in live_before
    assert zoho.live_refresh_tokens(CLIENT_ID) == live_before == {before["refresh_token"]}
    # The existing connection is untouched and still works.
    assert held_secret(created["secret_name"]) == before
    view = _view(admin, sid)
    assert view["status"] == "connected" and _organization(view) == ACME
    assert view["last_error"] == "connect refused: organization_mismatch"
    assert _org_through_api(zoho, admin, sid) == "Acme Ltd"
    # The operator reads one warning naming the subscription and why
    warning = logged_once(caplog, "consent refused")
    assert (warning["levelname"], warning["subscription_id"]) == ("WARNING", sid)
    assert "organization_mismatch" in warning["reason"]


def test_after_clearing_the_binding_the_next_consent_binds_its_organization(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    sid = create_subscription(admin)["subscription_id"]
    connect(admin, browser, sid)

    cleared = admin.patch(f"/admin/subscriptions/{sid}", json={"organization": None})
    set_instead = admin.patch(f"/admin/subscriptions/{sid}", json={"organization": GLOBEX})
    page = connect(admin, browser, sid, account=GLOBEX_ACCOUNT)

    assert cleared.status_code == 200 and cleared.json()["organization"] is None
    assert cleared.json()["status"] == "connected"  # clearing the binding leaves the connection
    assert set_instead.status_code == 400  # a binding comes from Zoho's answer, never from an operator
    assert page_title(page) == "Connected to Zoho CRM (US): Globex Corporation"
    assert _organization(_view(admin, sid)) == GLOBEX
    assert _org_through_api(zoho, admin, sid) == "Globex Corporation"
    # And now Acme is the other organization.
    assert connect(admin, browser, sid).status_code == 409


@pytest.mark.parametrize(
    ("break_it", "reason"),
    [
        (lambda zoho, admin: zoho.api.inject_failure(503), "verification failed: http_503"),
        (
            lambda zoho, admin: zoho.api.set_concurrency_limit(0),
            "verification failed: http_429 TOO_MANY_REQUESTS",
        ),
        (
            lambda zoho, admin: admin.patch(
                "/admin/integrations/zoho-crm/versions/1",
                json={
                    "verification": {
                        "path": "/org",
                        "organization_id": "org[0].org_id",
                        "organization_name": "org[0].company_name",
                    }
                },
            ),
            "verification failed: the answer has no organization at org[0].org_id and org[0].company_name",
        ),
        (
            lambda zoho, admin: admin.patch(
                "/admin/integrations/zoho-crm/versions/1",
                json={
                    "verification": {
                        "path": "/settings/org",
                        "organization_id": "a",
                        "organization_name": "b",
                    }
                },
            ),
            "verification failed: http_404 INVALID_URL_PATTERN",
        ),
    ],
)
def test_a_failing_verification_call_stores_the_connection_with_the_reason(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, break_it: Any, reason: str
) -> None:
    created = create_subscription(admin)
    sid = created["subscription_id"]
    break_it(zoho, admin)

    page = connect(admin, browser, sid)

    assert page.status_code == 200 and page_title(page) == "Connected to Zoho CRM (US)"
    view = _view(admin, sid)
    assert view["status"] == "connected" and view["organization"] is None
    assert view["organization_check_error"] == reason
    assert held_secret(created["secret_name"])["refresh_token"] in zoho.live_refresh_tokens(CLIENT_ID)


def test_clearing_the_binding_also_clears_the_failed_verifications_reason(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    sid = create_subscription(admin)["subscription_id"]
    zoho.api.inject_failure(503)
    connect(admin, browser, sid)
    assert _view(admin, sid)["organization_check_error"] == "verification failed: http_503"

    cleared = admin.patch(f"/admin/subscriptions/{sid}", json={"organization": None})

    assert cleared.status_code == 200
    assert (cleared.json()["organization"], cleared.json()["organization_check_error"]) == (None, None)
    assert _view(admin, sid)["organization_check_error"] is None
    assert cleared.json()["status"] == "connected"


def test_a_failed_verification_keeps_the_old_connection(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    # Given a bound subscription, when verification fails, then the old connection stays until it succeeds.
    created, sid, before, live = _bound_to_acme(admin, browser, zoho)
    zoho.api.inject_failure(500)
    link = connect_link(admin, sid)

    started = open_link(browser, link)
    page = browser.get(decide_at_zoho(browser, started.headers["location"]))
    failed = _view(admin, sid)
    after_failure = zoho.live_refresh_tokens(CLIENT_ID)
    retried = open_link(browser, link)  # as the page says: the same link, a minute later
    healed = browser.get(decide_at_zoho(browser, retried.headers["location"]))

    # Nothing shows the new consent is Acme's: refused for now, the new token revoked, the old one kept.
    assert page.status_code == 503 and "same connect link again" in page.text
    assert "could not confirm which Zoho organization" in page.text
    assert _organization(failed) == ACME and failed["status"] == "connected"
    assert failed["last_error"] == "connect refused: verification failed: http_500"
    assert after_failure == live == {before["refresh_token"]}
    assert page_title(healed) == "Connected to Zoho CRM (US): Acme Ltd"
    assert (
        _view(admin, sid)["last_error"] is None
        and held_secret(created["secret_name"])["refresh_token"] != before["refresh_token"]
    )


def _self_client_subscription(admin: httpx.Client) -> str:
    version = {
        "version": "self",
        "authorization_type": "self_client",
        "default_scopes": SCOPE.split(","),
        "default_api_url": "https://www.zohoapis.com/crm/v8",
        "default_throttling": {"requests_per_minute": 100, "max_concurrent_requests": 10},
        "verification": {
            "path": "/org",
            "organization_id": "org[0].id",
            "organization_name": "org[0].company_name",
        },
    }
    assert admin.post("/admin/integrations/zoho-crm/versions", json=version).status_code == 201
    return str(create_subscription(admin, name="Own CRM", version="self")["subscription_id"])


def test_self_client_grant_codes_are_verified_and_bound_the_same_way(
    admin: httpx.Client, zoho: ZohoStandIn
) -> None:
    sid = _self_client_subscription(admin)

    def submit(account: str | None) -> httpx.Response:
        code = zoho.issue_self_client_code(
            client_id=CLIENT_ID, scope=SCOPE, data_centre="eu", account=account
        )
        return admin.post(f"/admin/subscriptions/{sid}/grant-code", json={"code": code, "data_centre": "eu"})

    first = submit(None)
    live = zoho.live_refresh_tokens(CLIENT_ID)
    refused = submit(GLOBEX_ACCOUNT)
    after_refusal = zoho.live_refresh_tokens(CLIENT_ID)
    cleared = admin.patch(f"/admin/subscriptions/{sid}", json={"organization": None})
    accepted = submit(GLOBEX_ACCOUNT)

    assert first.status_code == 200 and _organization(first.json()) == ACME
    assert refused.status_code == 409 and refused.json()["error"] == "organization_mismatch"
    assert "Globex Corporation" in refused.json()["message"] and "Acme Ltd" in refused.json()["message"]
    assert after_refusal == live  # Globex's new refresh token was revoked, Acme's kept
    assert cleared.status_code == 200
    assert accepted.status_code == 200 and _organization(accepted.json()) == GLOBEX


def test_verification_and_refusal_leak_no_token(
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    broker_env: dict[str, str],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # No token reaches logs, items, pages or answers through verification and refusal.
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="zoho-broker")
    created = create_subscription(admin)
    sid = created["subscription_id"]
    seen = [connect(admin, browser, sid).text]
    connected = held_secret(created["secret_name"])
    live = zoho.live_refresh_tokens(CLIENT_ID)
    seen.append(connect(admin, browser, sid, account=GLOBEX_ACCOUNT).text)
    refused_token = [r for r in zoho.requests if r.path == "/oauth/v2/token/revoke"][-1].params["token"]
    zoho.api.inject_failure(502)
    seen.append(admin.patch(f"/admin/subscriptions/{sid}", json={"organization": None}).text)
    seen.append(connect(admin, browser, sid, account=GLOBEX_ACCOUNT).text)
    reconnected = held_secret(created["secret_name"])
    seen.append(admin.get(f"/admin/subscriptions/{sid}").text)
    seen.append(admin.get("/admin/subscriptions").text)
    seen.append(
        json.dumps(boto3.client("dynamodb").scan(TableName=broker_env["BROKER_SUBSCRIPTIONS_TABLE"])["Items"])
    )
    assert refused_token not in live and refused_token not in zoho.live_refresh_tokens(CLIENT_ID)
    assert _view(admin, sid)["organization_check_error"] == "verification failed: http_502"
    assert_never_shown(
        seen,
        {
            "client secret": CLIENT_SECRET,
            "access token": connected["access_token"],
            "refresh token": connected["refresh_token"],
            "new access token": reconnected["access_token"],
            "new refresh token": reconnected["refresh_token"],
            "refused consent's refresh token": refused_token,
        },
        capfd=capfd,
        caplog=caplog,
    )


def test_a_version_without_a_verification_call_connects_unbound(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    # Given a version without a verification call, then consents connect and the binding is left alone.
    _, sid, _, _ = _bound_to_acme(admin, browser, zoho)
    calls = len(zoho.api.requests)

    unbound_version = admin.patch("/admin/integrations/zoho-crm/versions/1", json={"verification": None})
    page = connect(admin, browser, sid, account=GLOBEX_ACCOUNT)

    assert unbound_version.status_code == 200
    assert page.status_code == 200 and page_title(page) == "Connected to Zoho CRM (US)"  # nothing verified
    assert len(zoho.api.requests) == calls  # no API call was made
    view = _view(admin, sid)
    assert _organization(view) == ACME and view["organization_check_error"] is None


def test_the_verification_call_carries_the_versions_api_headers_and_query_parameters(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    # Given a version whose API calls carry a header and a query parameter made from custom fields
    version = {
        "version": "2",
        "oauth_url_template": admin.get("/admin/integrations/zoho-crm/versions/1").json()[
            "oauth_url_template"
        ],
        "default_scopes": SCOPE.split(","),
        "default_api_url": "https://www.zohoapis.com/crm/v8",
        "default_throttling": {"requests_per_minute": 100, "max_concurrent_requests": 10},
        "custom_fields": [{"name": "RedirectUrl"}, {"name": "OrgId"}],
        "verification": {
            "path": "/org",
            "organization_id": "org[0].id",
            "organization_name": "org[0].company_name",
        },
        "api_headers": {"X-Org": "{SystemTypeVersion:OrgId}"},
        "api_query_parameters": {"organization_id": "{SystemTypeVersion:OrgId}"},
    }
    assert admin.post("/admin/integrations/zoho-crm/versions", json=version).status_code == 201, version
    sid = create_subscription(admin, version="2", custom_fields={"OrgId": "4000000001"})["subscription_id"]

    # When a person connects it
    assert page_title(connect(admin, browser, sid)) == "Connected to Zoho CRM (US): Acme Ltd"

    # Then the verification call was made as every API call of the version is
    [check] = [request for request in zoho.api.requests if request.path == "/crm/v8/org"]
    assert check.params == {"organization_id": "4000000001"}
    assert check.headers["x-org"] == "4000000001"

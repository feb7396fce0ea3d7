"""Promises of the connect flow and the admin API checked end to end (moto, the stand-in over HTTP): the
Secure binding cookie when deployed, `RedirectUrl` as the redirect URI of both the authorization URL and
the code exchange, the secret of a deleted subscription kept recoverable for seven days, and what a
consent without offline access (no refresh token from Zoho) does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit, urlunsplit

import boto3
import httpx
import pytest
from aws_calls import failing_once
from flow import (
    CLIENT_SECRET,
    connect,
    connect_link,
    connected,
    create_subscription,
    decide_at_zoho,
    open_link,
    page_message,
    page_title,
)
from stored import stored_secret

from broker_local.gateway import LocalApiGateway
from broker_local.zoho_standin import ZohoStandIn
from zoho_broker.services import Services, reset_services
from zoho_broker.store import aws

PORTAL_CALLBACK = "https://portal.example.com/oauth/callback"


def test_when_deployed_the_binding_cookie_is_secure_host_only_and_completes_the_consent(
    admin: httpx.Client, browser: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the broker as deployed (cookies for https)
    monkeypatch.setenv("BROKER_COOKIE_SECURE", "true")
    reset_services()
    sid = create_subscription(admin)["subscription_id"]

    # When a person presses Continue on a connect link
    started = open_link(browser, connect_link(admin, sid))

    # Then the binding cookie is Secure, host-only (the __Host- prefix, Path=/, no Domain), HttpOnly, Lax
    assert started.status_code == 302
    [set_cookie] = started.headers.get_list("set-cookie")
    cookie = SimpleCookie(set_cookie)
    [name] = list(cookie)
    morsel = cookie[name]
    assert name == "__Host-zoho_broker_binding"
    assert (morsel["secure"], morsel["httponly"], morsel["path"], morsel["domain"], morsel["samesite"]) == (
        True,
        True,
        "/",
        "",
        "Lax",
    )
    # and the callback, which a browser reaches over https carrying that cookie, completes the consent
    callback = decide_at_zoho(browser, started.headers["location"], data_centre="eu")
    browser.cookies.clear()  # httpx keeps Secure cookies off plain http: send it as an https browser would
    done = browser.get(callback, headers={"Cookie": f"{name}={morsel.value}"})
    assert (done.status_code, page_title(done)) == (200, "Connected to Zoho CRM (EU): Acme Ltd")


def test_redirect_url_is_the_redirect_uri_of_the_authorization_and_the_code_exchange(
    admin: httpx.Client, browser: httpx.Client, gateway: LocalApiGateway, zoho: ZohoStandIn
) -> None:
    # Given a subscription whose RedirectUrl is the portal's registered callback
    sid = create_subscription(admin, custom_fields={"RedirectUrl": PORTAL_CALLBACK})["subscription_id"]

    # When a person starts the consent and Zoho sends them back to that URL
    started = open_link(browser, connect_link(admin, sid))
    authorization = parse_qs(urlsplit(started.headers["location"]).query)
    back_at = urlsplit(decide_at_zoho(browser, started.headers["location"], data_centre="us"))
    # (the portal's callback is the broker behind another name: deliver it to the broker)
    broker = urlsplit(gateway.base_url)
    done = browser.get(urlunsplit((broker.scheme, broker.netloc, back_at.path, back_at.query, "")))

    # Then both the authorization URL and the code exchange named RedirectUrl, and Zoho connected it
    assert authorization["redirect_uri"] == [PORTAL_CALLBACK]
    assert f"{back_at.scheme}://{back_at.netloc}{back_at.path}" == PORTAL_CALLBACK
    [exchange] = [r for r in zoho.requests if r.params.get("grant_type") == "authorization_code"]
    assert exchange.params["redirect_uri"] == PORTAL_CALLBACK
    assert (done.status_code, page_title(done)) == (200, "Connected to Zoho CRM (US): Acme Ltd")


def test_a_deleted_subscriptions_secret_can_be_restored_for_seven_days(admin: httpx.Client) -> None:
    # Given a subscription with its client secret in Secrets Manager
    created = create_subscription(admin)
    secrets = boto3.client("secretsmanager")

    # When it is deleted
    assert admin.delete(f"/admin/subscriptions/{created['subscription_id']}").status_code == 204

    # Then its secret is scheduled for deletion seven days from now, and until then it can be restored
    described = secrets.describe_secret(SecretId=created["secret_name"])
    scheduled = described["DeletedDate"] - datetime.now(UTC)
    assert timedelta(days=7) - timedelta(minutes=1) < scheduled <= timedelta(days=7)
    secrets.restore_secret(SecretId=created["secret_name"])
    restored = secrets.get_secret_value(SecretId=created["secret_name"])["SecretString"]
    assert json.loads(restored)["client_secret"] == CLIENT_SECRET


def _asking_for_online_access(admin: httpx.Client, subscription_id: str) -> None:
    """The subscription's version edited to ask Zoho for online access: its consents give no refresh token."""
    version = admin.get(f"/admin/subscriptions/{subscription_id}").json()["version"]
    path = f"/admin/integrations/zoho-crm/versions/{version}"
    template = admin.get(path).json()["oauth_url_template"]
    assert "access_type=offline" in template
    online = template.replace("access_type=offline", "access_type=online")
    assert admin.patch(path, json={"oauth_url_template": online}).status_code == 200


def test_a_first_consent_that_yields_no_refresh_token_is_refused_and_says_so(
    admin: httpx.Client, browser: httpx.Client
) -> None:
    sid = create_subscription(admin)["subscription_id"]
    _asking_for_online_access(admin, sid)

    answer = connect(admin, browser, sid, data_centre="eu")

    assert (answer.status_code, page_message(answer)) == (
        502,
        "Zoho gave no refresh token, so the connection could not be kept.",
    )
    view = admin.get(f"/admin/subscriptions/{sid}").json()
    assert (view["status"], view["last_error"]) == ("not_connected", "connect failed: no_refresh_token")


def test_a_reconsent_without_a_new_refresh_token_keeps_the_working_one_even_when_a_write_fails(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    # Given a connected subscription whose version now asks for online access (Zoho answers a consent
    # with an access token only)
    sid = connected(admin, browser)
    working = stored_secret(services, sid)["refresh_token"]
    client_id = admin.get(f"/admin/subscriptions/{sid}").json()["client_id"]
    _asking_for_online_access(admin, sid)

    # When a person consents again at the same data centre while Secrets Manager refuses the write
    with failing_once(aws.secretsmanager(), "PutSecretValue", "ThrottlingException"):
        refused = connect(admin, browser, sid, data_centre="eu")

    # Then they are told to try again, and the refresh token in use is neither lost nor revoked
    assert refused.status_code == 503
    assert stored_secret(services, sid)["refresh_token"] == working
    assert working in zoho.live_refresh_tokens(client_id)

    # And when they try again the connection goes on with that same refresh token
    assert connect(admin, browser, sid, data_centre="eu").status_code == 200
    assert stored_secret(services, sid)["refresh_token"] == working
    assert working in zoho.live_refresh_tokens(client_id)

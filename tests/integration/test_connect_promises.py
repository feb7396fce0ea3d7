"""Promises of the connect flow and the admin API checked end to end (moto, the stand-in over HTTP): the
Secure binding cookie when deployed, `RedirectUrl` as the redirect URI of both the authorization URL and
the code exchange, and the secret of a deleted subscription kept recoverable for seven days."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit, urlunsplit

import boto3
import httpx
import pytest
from flow import CLIENT_SECRET, connect_link, create_subscription, decide_at_zoho, open_link, page_title

from broker_local.gateway import LocalApiGateway
from broker_local.zoho_standin import ZohoStandIn
from zoho_broker.services import reset_services

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

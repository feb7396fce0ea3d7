"""The console's actions and the Zoho stand-in's failure controls, as an operator uses them in Chromium.

Same set-up as test_browser.py (the real local runner on free ports, Debian's chromium, no skipping);
here the runner's stand-in is at hand too, so a test can check what Zoho saw.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from broker_local.zoho_standin import ZohoStandIn
from tests.conftest import local_runner
from tests.e2e.test_browser import (
    DESKTOP,
    STANDIN_TITLE,
    Broker,
    Person,
    _assert_security_headers,
    _card,
    _person,
    _subscription,
    chromium,
    person,
)

__all__ = ["chromium", "person"]  # fixtures shared with test_browser.py


@dataclass(frozen=True)
class Runner:
    broker: Broker
    zoho: ZohoStandIn


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    with local_runner() as started:
        base_url = started["gateway"].base_url
        with httpx.Client(base_url=base_url, timeout=60) as admin:
            broker = Broker(
                base_url=base_url,
                standin_origins=tuple(started["accounts_servers"].values()),
                aws_endpoint=os.environ["AWS_ENDPOINT_URL"],
                admin=admin,
            )
            yield Runner(broker, started["standin"])


@pytest.fixture
def broker(runner: Runner) -> Iterator[Broker]:
    yield runner.broker
    runner.zoho.clear_faults()


def _details(card: Any) -> dict[str, str]:
    return dict(zip(card.locator("dt").all_inner_texts(), card.locator("dd").all_inner_texts(), strict=True))


def _console(person: Person, broker: Broker) -> None:
    response = person.page.goto(broker.base_url + "/")
    assert response is not None and response.status == 200
    _assert_security_headers(response)


def _press(person: Person, name: str, button: str) -> None:
    _card(person.page, name).get_by_role("button", name=button, exact=True).click()
    person.page.wait_for_load_state()


def _consent(person: Person, data_centre: str = "eu") -> None:
    """At the stand-in's consent page: pick the data centre, Accept, and land on the broker's answer."""
    page = person.page
    expect(page).to_have_title(STANDIN_TITLE)
    page.get_by_label("Your account's data centre").select_option(data_centre)
    page.get_by_role("button", name="Accept").click()
    page.wait_for_load_state()


def _connected(person: Person, broker: Broker, name: str) -> None:
    _console(person, broker)
    _press(person, name, "Authenticate")
    _consent(person)
    expect(person.page.get_by_role("heading", level=1)).to_have_text("Connected to Zoho CRM (EU): Acme Ltd")
    _console(person, broker)
    expect(_card(person.page, name).locator(".status-text")).to_have_text("connected")


def _next_refresh(card: Any) -> str | None:
    """The moment itself (its relative wording changes as the test runs)."""
    moment: str | None = card.locator("dt:text-is('Next refresh') + dd time").get_attribute("datetime")
    return moment


def _notice(page: Page) -> str:
    return page.locator(".notice").inner_text()


def test_revoked_at_zoho_then_refreshed_needs_re_authentication_and_reconnect_connects_again(
    broker: Broker, person: Person, runner: Runner
) -> None:
    subscription = _subscription(broker, "Revoked CRM")
    name, sid = subscription["name"], subscription["subscription_id"]
    page = person.page
    _connected(person, broker, name)
    details = _details(_card(page, name))
    assert details["Subscription id"] == sid
    assert details["API domain"] == runner.zoho.accounts_servers["eu"]  # the stand-in serves the API too
    assert re.search(r"UTC \((just now|1 min ago)\)$", details["Connected at"]), details
    assert re.search(r"UTC \(in \d+ min\)$", details["Next refresh"]), details

    _press(person, name, "Revoke at Zoho")
    assert "removed the access" in _notice(page)
    _press(person, name, "Refresh")

    assert "needs re-authentication" in _notice(page)
    card = _card(page, name)
    for shown in (_notice(page), card.inner_text()):  # said in words; the raw event keeps its code
        assert "invalid_code" not in shown
    expect(card.locator(".status-text")).to_have_text("needs re-authentication")
    details = _details(card)
    assert "Access token expires" not in details
    assert details["Last error"].startswith("Zoho no longer accepts the sign-in")
    events = page.get_by_role("region", name="Recent events")
    expect(events.get_by_role("row").filter(has_text="SubscriptionNeedsReauthentication")).to_contain_text(
        sid
    )

    _press(person, name, "Reconnect")
    _consent(person)
    expect(page.get_by_role("heading", level=1)).to_have_text("Connected to Zoho CRM (EU): Acme Ltd")
    expect(page.get_by_text(f"{name} is connected.")).to_be_visible()
    page.get_by_role("link", name="Back to the console").click()  # the flow began at the console
    page.wait_for_load_state()
    card = _card(page, name)
    expect(card.locator(".status-text")).to_have_text("connected")
    assert "Last error" not in _details(card)
    recovered = page.get_by_role("region", name="Recent events").get_by_role("row")
    expect(recovered.filter(has_text="SubscriptionRecovered")).to_contain_text(sid)
    person.assert_clean(broker)


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("server_error", "Zoho had a problem on its side (HTTP 500)."),
        ("rate_limited", "Zoho asked the broker to slow down (too many requests)."),
        ("timeout", "Zoho did not answer in time."),
    ],
)
def test_zoho_failing_the_next_calls_is_seen_as_a_retry_later_not_a_lost_connection(
    broker: Broker, person: Person, kind: str, words: str
) -> None:
    subscription = _subscription(broker, f"Failing CRM {kind}")
    name = subscription["name"]
    page = person.page
    _connected(person, broker, name)
    before = _next_refresh(_card(page, name))
    assert before is not None

    page.get_by_label("The next token calls will").select_option(kind)
    page.get_by_label("How many").fill("5")
    page.get_by_role("button", name="Make Zoho fail").click()
    page.wait_for_load_state()
    assert "Zoho's next token 5 calls at any data centre will" in _notice(page)
    pressed = datetime.now(UTC).replace(microsecond=0)
    _press(person, name, "Refresh")

    assert words in _notice(page)
    assert "retries it" in _notice(page)
    card = _card(page, name)
    expect(card.locator(".status-text")).to_have_text("connected")  # transient: backoff, not re-auth
    details = _details(card)
    assert details["Last error"] == words
    # The token still works: the due refresh stays where it was, unless it was due sooner than the
    # backoff allows (one to two minutes after a first failure), when it moves to the backoff
    after = _next_refresh(card)
    assert after is not None
    was, now_due = datetime.fromisoformat(before), datetime.fromisoformat(after)
    assert now_due >= was
    assert now_due == was or pressed + timedelta(minutes=1) <= now_due <= pressed + timedelta(
        minutes=2, seconds=30
    )
    person.assert_clean(broker)


def test_a_wrong_client_secret_is_refused_by_zoho_as_invalid_client(broker: Broker, person: Person) -> None:
    subscription = _subscription(broker, "Wrong secret CRM")
    name, sid = subscription["name"], subscription["subscription_id"]
    _connected(person, broker, name)
    changed = broker.admin.patch(f"/admin/subscriptions/{sid}", json={"client_secret": "not-the-secret-0123"})
    assert changed.status_code == 200, changed.text

    _console(person, broker)
    _press(person, name, "Refresh")

    card = _card(person.page, name)
    expect(card.locator(".status-text")).to_have_text("needs re-authentication")
    assert _details(card)["Last error"].startswith("Zoho does not recognise the app's client id and secret")
    person.assert_clean(broker)


def test_a_connect_link_to_send_works_in_another_browser(
    broker: Broker, person: Person, chromium: Browser
) -> None:
    subscription = _subscription(broker, "Linked CRM")
    name = subscription["name"]
    _console(person, broker)
    _press(person, name, "Connect link")

    page = person.page
    expect(page.get_by_role("heading", level=2)).to_have_text(f"Connect link for {name}")
    link = page.get_by_label(re.compile("Send this link to the person"))
    expect(link).to_have_attribute("readonly", "")
    url = link.input_value()
    assert url.startswith(broker.base_url + "/connect/")
    assert re.search(
        r"Expires \d{4}-\d\d-\d\d \d\d:\d\d UTC \(in \d+ (min|h)\)\.", page.locator("main").inner_text()
    )

    for customer in _person(chromium, DESKTOP):
        customer.page.goto(url)
        customer.page.get_by_role("button", name="Continue to Zoho").click()
        _consent(customer, "us")
        expect(customer.page.get_by_role("heading", level=1)).to_have_text(
            "Connected to Zoho CRM (US): Acme Ltd"
        )
        expect(customer.page.get_by_text(f"{name} is connected.")).to_be_visible()
        # The customer's flow did not begin at the console: nothing to go back to.
        expect(customer.page.get_by_role("link", name="Back to the console")).to_have_count(0)
    _console(person, broker)
    expect(_card(page, name).locator(".status-text")).to_have_text("connected")
    person.assert_clean(broker)


def test_revoke_disconnects_and_revokes_the_token_at_zoho(
    runner: Runner, broker: Broker, person: Person
) -> None:
    subscription = _subscription(broker, "Disconnected CRM")
    name = subscription["name"]
    _connected(person, broker, name)
    assert runner.zoho.live_refresh_tokens(subscription["client_id"])

    _press(person, name, "Revoke")

    assert "is disconnected" in _notice(person.page)
    expect(_card(person.page, name).locator(".status-text")).to_have_text("not connected")
    assert runner.zoho.live_refresh_tokens(subscription["client_id"]) == set()
    person.assert_clean(broker)


def test_the_favicon_is_served(broker: Broker) -> None:
    answer = broker.admin.get("/favicon.ico")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
    assert answer.content.startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    "path",
    [
        "/console/subscriptions/{sid}/refresh",
        "/console/subscriptions/{sid}/revoke",
        "/console/subscriptions/{sid}/zoho-revoke",
        "/console/subscriptions/{sid}/connect-link",
        "/console/zoho/faults",
    ],
)
def test_actions_posted_from_another_site_are_refused(broker: Broker, path: str) -> None:
    subscription = _subscription(broker, "Forged action CRM")

    forged = broker.admin.post(
        path.format(sid=subscription["subscription_id"]),
        headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.test"},
        data={"kind": "timeout", "count": "1", "data_centre": "any"},
    )

    assert forged.status_code == 403
    assert "did not come from this console" in forged.text


def test_an_invalid_failure_control_is_refused_with_the_field_named(broker: Broker) -> None:
    answer = broker.admin.post(
        "/console/zoho/faults", data={"kind": "explode", "count": "0", "data_centre": "any"}
    )

    assert answer.status_code == 400
    assert "Nothing changed: check kind, count." in answer.text


def test_a_damaged_sign_in_link_is_explained_in_plain_words(broker: Broker, person: Person) -> None:
    response = person.page.goto(f"{broker.base_url}/oauth/callback?state=not-a-state&code=1000.x&location=eu")

    assert response is not None
    assert response.status == 400
    text = person.page.locator("main").inner_text()
    assert "This sign-in link is incomplete or damaged." in text
    for jargon in ("malformed", "state", "invalid_"):
        assert jargon not in text

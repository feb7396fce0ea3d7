"""The pages a person sees, in real headless Chromium (Debian's `chromium`, driven by Playwright).

The real local runner (`make dev`: moto server, Zoho stand-in, the template's routes and the console)
runs in this process on free ports. A person opens the console, clicks Authenticate, decides at the
stand-in's consent page and reads the broker's answer; the console then shows the new status.
Chromium is required: without it these tests fail, they never skip.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, expect, sync_playwright

from tests.conftest import local_runner
from tests.held_secrets import held_secret

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 375, "height": 667}
DESKTOP = {"width": 1280, "height": 800}
STANDIN_TITLE = "Zoho Accounts (stand-in)"
MASKED = re.compile(r"^1000…\((\d+) chars\)$")


@dataclass(frozen=True)
class Broker:
    base_url: str
    standin_origins: tuple[str, ...]
    aws_endpoint: str
    admin: httpx.Client


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    """The local runner as `make dev` starts it, minus the demo subscriptions."""
    with local_runner() as started:
        base_url = started["gateway"].base_url
        with httpx.Client(base_url=base_url, timeout=10) as admin:
            yield Broker(
                base_url=base_url,
                standin_origins=tuple(started["accounts_servers"].values()),
                aws_endpoint=os.environ["AWS_ENDPOINT_URL"],
                admin=admin,
            )


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}: install Debian's browser with `make browser` "
            "(apt-get install chromium). The browser tests need it and never skip.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@dataclass
class Person:
    """One browser (its own cookies) and everything it saw."""

    page: Page
    console: list[ConsoleMessage] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    documents: set[str] = field(default_factory=set)

    def assert_clean(self, broker: Broker) -> None:
        """Nothing left 127.0.0.1, nothing failed, and no page logged an error or a CSP violation."""
        assert self.requested
        assert {urlsplit(url).hostname for url in self.requested} == {"127.0.0.1"}, self.requested
        assert self.failed == []
        problems = [
            f"{message.type}: {message.text} ({message.location.get('url')})"
            for message in self.console
            if message.type in ("error", "warning") and not self._expected(broker, message)
        ]
        assert problems == []

    def _expected(self, broker: Broker, message: ConsoleMessage) -> bool:
        """Chromium's note that a page came with an error status (error pages do, by design); the
        broker and the stand-in both serve /favicon.ico, so no other resource may fail."""
        url = str(message.location.get("url") or "")
        if not message.text.startswith("Failed to load resource: the server responded with a status"):
            return False
        return url in self.documents


def _person(chromium: Browser, viewport: dict[str, int]) -> Iterator[Person]:
    context = chromium.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = context.new_page()
    person = Person(page)
    page.on("console", lambda message: person.console.append(message))
    page.on("requestfailed", lambda request: person.failed.append(f"{request.url}: {request.failure}"))
    page.on("request", lambda request: person.requested.append(request.url))
    page.on(
        "request",
        lambda request: person.documents.add(request.url) if request.is_navigation_request() else None,
    )
    try:
        yield person
    finally:
        context.close()


@pytest.fixture
def person(chromium: Browser) -> Iterator[Person]:
    yield from _person(chromium, DESKTOP)


def _subscription(broker: Broker, name: str) -> dict[str, Any]:
    # A client of its own: the stand-in allows four grant codes a minute per client, like Zoho.
    body = {
        "name": f"{name} {secrets.token_hex(3)}",
        "integration": "zoho-crm",
        "client_id": f"1000.BROWSER{secrets.token_hex(8).upper()}",
        "client_secret": secrets.token_urlsafe(24),
    }
    answer = broker.admin.post("/admin/subscriptions", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _card(page: Page, name: str) -> Any:
    return page.get_by_role("article", name=name, exact=True)


def _open_console(person: Person, broker: Broker) -> Response:
    response = person.page.goto(broker.base_url + "/")
    assert response is not None
    assert response.status == 200
    expect(person.page.get_by_role("heading", level=1)).to_have_text("Zoho OAuth broker: local console")
    return response


def _authenticate(person: Person, broker: Broker, name: str, button: str = "Authenticate") -> None:
    """From the console to the stand-in's consent page (a connected subscription's button is Reconnect)."""
    _open_console(person, broker)
    _card(person.page, name).get_by_role("button", name=button).click()
    expect(person.page).to_have_title(STANDIN_TITLE)
    expect(person.page.get_by_role("heading", level=1)).to_have_text("Allow access to your Zoho account?")


def _decide(person: Person, decision: str, data_centre: str = "eu", account: str | None = None) -> Response:
    """Pick the data centre (and the account signing in), click Accept or Deny; the broker's callback answers."""
    page = person.page
    page.get_by_label("Your account's data centre").select_option(data_centre)
    if account is not None:
        page.get_by_label(account).check()
    with page.expect_response(lambda response: urlsplit(response.url).path == "/oauth/callback") as info:
        page.get_by_role("button", name=decision).click()
    page.wait_for_load_state()
    return info.value


def _assert_security_headers(response: Response) -> None:
    headers = response.headers
    policy = headers.get("content-security-policy", "")
    assert "default-src 'none'" in policy
    assert re.search(r"style-src 'sha256-[A-Za-z0-9+/=]{44}';", policy), policy
    assert "frame-ancestors 'none'" in policy
    assert headers.get("referrer-policy") == "no-referrer"
    assert headers.get("x-content-type-options") == "nosniff"


def _fits(page: Page) -> None:
    """No horizontal scrolling, and the main heading sits inside the viewport's width."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the viewport"
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_be_visible()
    box = heading.bounding_box()
    assert box is not None
    width = page.viewport_size["width"] if page.viewport_size else 0
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= width


# --------------------------------------------------------------------------------------------------
# Journeys


def test_a_person_connects_from_the_console_and_sees_the_status_change(
    broker: Broker, person: Person
) -> None:
    subscription = _subscription(broker, "Acme CRM <b>&amp;</b>")
    name = subscription["name"]
    page = person.page

    console = _open_console(person, broker)
    card = _card(page, name)
    expect(card.get_by_role("heading", level=2)).to_have_text(name)  # shown as text, not as markup
    expect(card.locator(".status-text")).to_have_text("not connected")
    _assert_security_headers(console)

    _authenticate(person, broker, name)
    callback = _decide(person, "Accept", "eu")

    assert callback.status == 200
    _assert_security_headers(callback)
    expect(page.get_by_role("heading", level=1)).to_have_text("Connected to Zoho CRM (EU): Acme Ltd")
    expect(page.get_by_text("You may close this page.")).to_be_visible()
    # The page's only stylesheet ran under the CSP (its hash is allowed), so the card is styled.
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(245, 246, 248)"

    _open_console(person, broker)
    card = _card(page, name)
    expect(card.locator(".status-text")).to_have_text("connected")
    details = dict(
        zip(card.locator("dt").all_inner_texts(), card.locator("dd").all_inner_texts(), strict=True)
    )
    assert details["Data centre"] == "EU"
    assert re.search(r"UTC \(in (59|60) min\)$", details["Access token expires"]), details
    secret = held_secret(
        subscription["secret_name"],
        boto3.client("secretsmanager", endpoint_url=broker.aws_endpoint, region_name="us-east-1"),
    )
    for label, raw in (("Access token", secret["access_token"]), ("Refresh token", secret["refresh_token"])):
        masked = MASKED.fullmatch(details[label])
        assert masked is not None, details
        assert int(masked.group(1)) == len(raw)
    html = page.content()
    assert secret["access_token"] not in html
    assert secret["refresh_token"] not in html
    assert secret["client_secret"] not in html
    person.assert_clean(broker)


def test_a_person_who_denies_access_is_told_so_and_nothing_connects(broker: Broker, person: Person) -> None:
    subscription = _subscription(broker, "Denied CRM")
    page = person.page

    _authenticate(person, broker, subscription["name"])
    callback = _decide(person, "Deny")

    assert callback.status == 200
    _assert_security_headers(callback)
    expect(page.get_by_role("heading", level=1)).to_have_text("Access was not granted")
    expect(page.get_by_text("nothing was connected")).to_be_visible()
    _open_console(person, broker)
    expect(_card(page, subscription["name"]).locator(".status-text")).to_have_text("not connected")
    person.assert_clean(broker)


def test_a_replayed_callback_shows_the_error_page_not_a_stack_trace(broker: Broker, person: Person) -> None:
    subscription = _subscription(broker, "Replayed CRM")
    page = person.page
    _authenticate(person, broker, subscription["name"])
    first = _decide(person, "Accept", "us")
    assert first.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Connected to Zoho CRM (US): Acme Ltd")

    replay = page.goto(first.url)

    assert replay is not None
    assert replay.status == 400
    _assert_security_headers(replay)
    expect(page.get_by_role("heading", level=1)).to_have_text("This sign-in can't be completed")
    text = page.locator("body").inner_text()
    assert "Traceback" not in text
    assert "Internal Server Error" not in text
    assert "ask whoever sent you the connect link" in text.lower()
    person.assert_clean(broker)


def test_a_person_of_another_organization_is_refused_by_name_and_the_connection_stays(
    broker: Broker, person: Person
) -> None:
    subscription = _subscription(broker, "Bound CRM")
    page = person.page
    _authenticate(person, broker, subscription["name"])
    assert _decide(person, "Accept", "eu").status == 200

    _authenticate(person, broker, subscription["name"], button="Reconnect")
    refused = _decide(person, "Accept", "eu", account="admin@globex.example (Globex Corporation)")

    assert refused.status == 409
    _assert_security_headers(refused)
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "This Zoho account belongs to another organization"
    )
    expect(page.get_by_text("Acme Ltd (id 4000000001)")).to_be_visible()
    assert "Globex Corporation (id 4000000002)" in page.locator("body").inner_text()
    _open_console(person, broker)
    card = _card(page, subscription["name"])
    expect(card.locator(".status-text")).to_have_text("connected")
    expect(card.get_by_text("Acme Ltd", exact=True)).to_be_visible()
    person.assert_clean(broker)


def test_authenticate_from_another_site_is_refused(broker: Broker) -> None:
    """A cross-site form must not start a consent flow in the operator's browser."""
    subscription = _subscription(broker, "Forged CRM")
    path = f"/console/subscriptions/{subscription['subscription_id']}/authenticate"

    forged = broker.admin.post(path, headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.test"})
    same = broker.admin.post(path, headers={"Sec-Fetch-Site": "same-origin", "Origin": "null"})

    assert forged.status_code == 403
    assert "location" not in forged.headers
    assert same.status_code == 307
    assert same.headers["location"].startswith(broker.base_url + "/connect/")


@pytest.fixture(params=[("phone", PHONE), ("desktop", DESKTOP)], ids=["phone", "desktop"])
def sized_person(request: pytest.FixtureRequest, chromium: Browser) -> Iterator[tuple[str, Person]]:
    size, viewport = request.param
    for person in _person(chromium, viewport):
        yield size, person


def test_every_page_fits_a_phone_and_a_desktop(
    broker: Broker, sized_person: tuple[str, Person], screenshots: Path
) -> None:
    size, person = sized_person
    page = person.page

    def shoot(name: str) -> None:
        _fits(page)
        page.screenshot(path=screenshots / f"{size}-{name}.png", full_page=True)

    accepted = _subscription(broker, f"Layout CRM {size}")
    denied = _subscription(broker, f"Layout denied {size}")
    _open_console(person, broker)
    shoot("console-before")
    _authenticate(person, broker, accepted["name"])
    page.screenshot(path=screenshots / f"{size}-standin-consent.png", full_page=True)
    _decide(person, "Accept", "eu")
    expect(page.get_by_role("heading", level=1)).to_have_text("Connected to Zoho CRM (EU): Acme Ltd")
    shoot("connected")
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("This sign-in can't be completed")
    shoot("error")
    _authenticate(person, broker, denied["name"])
    _decide(person, "Deny")
    expect(page.get_by_role("heading", level=1)).to_have_text("Access was not granted")
    shoot("denied")
    _open_console(person, broker)
    shoot("console-after")
    person.assert_clean(broker)
    print(f"screenshots: {screenshots}")

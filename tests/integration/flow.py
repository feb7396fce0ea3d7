"""Steps of the consent journey as a person's browser takes them, over real HTTP."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx
import pytest

from tests.html_form import read_form

CLIENT_SECRET = "zoho-client-secret-0123456789abcdef"


def create_subscription(admin: httpx.Client, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Acme CRM",
        "integration": "zoho-crm",
        "client_id": "1000.CLIENTID0123456789",
        "client_secret": CLIENT_SECRET,
    }
    body.update(overrides)
    answer = admin.post("/admin/subscriptions", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def connect_link(admin: httpx.Client, subscription_id: str) -> str:
    answer = admin.post(f"/admin/subscriptions/{subscription_id}/connect-links")
    assert answer.status_code == 201, answer.text
    url: str = answer.json()["url"]
    return url


def open_link(browser: httpx.Client, link: str) -> httpx.Response:
    """The person opens the connect link and presses Continue: the broker redirects to Zoho."""
    page = browser.get(link)
    if page.status_code != 200:
        return page
    form = read_form(page.text)
    return browser.post(str(page.url.join(form.action)))


def decide_at_zoho(
    browser: httpx.Client,
    authorization_url: str,
    *,
    decision: str = "accept",
    data_centre: str = "us",
    account: str | None = None,
) -> str:
    """On Zoho's consent page, pick the data centre (and the account signing in, whose organization the
    tokens reach: the stand-in's first one unless named) and click Accept or Deny; returns the callback URL."""
    page = browser.get(authorization_url)
    assert page.status_code == 200, page.text
    form = read_form(page.text)
    answer = browser.post(
        str(page.url.join(form.action)),
        data={
            **form.fields,
            "data_centre": data_centre,
            "decision": decision,
            **({"account": account} if account else {}),
        },
    )
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def connect(
    admin: httpx.Client,
    browser: httpx.Client,
    subscription_id: str,
    *,
    data_centre: str = "us",
    account: str | None = None,
) -> httpx.Response:
    """The whole journey: link, Zoho's consent page, back to the broker's callback."""
    started = open_link(browser, connect_link(admin, subscription_id))
    assert started.status_code == 302, started.text
    callback_url = decide_at_zoho(
        browser, started.headers["location"], data_centre=data_centre, account=account
    )
    return browser.get(callback_url)


def connected(admin: httpx.Client, browser: httpx.Client, data_centre: str = "eu", **fields: Any) -> str:
    """A new subscription (``fields`` over the defaults) that a person connected; its id."""
    subscription_id = str(create_subscription(admin, **fields)["subscription_id"])
    answer = connect(admin, browser, subscription_id, data_centre=data_centre)
    assert answer.status_code == 200, answer.text
    return subscription_id


def page_title(response: httpx.Response) -> str:
    match = re.search(r"<h1>(.*?)</h1>", response.text)
    return match.group(1) if match else ""


def page_message(response: httpx.Response) -> str:
    """The sentence under an error page's heading, as the person reads it."""
    match = re.search(r"</h1><p>(.*?)</p>", response.text)
    return html.unescape(match.group(1)) if match else ""


def refusal(response: httpx.Response) -> tuple[int, str, str]:
    """An admin API error as the operator reads it: status, error code and message."""
    body = response.json()
    return response.status_code, body["error"], body["message"]


def logged_once(caplog: pytest.LogCaptureFixture, message: str) -> dict[str, Any]:
    """The fields of the one record logged with ``message``, as an operator's log query finds it."""
    lines = [vars(record) for record in caplog.records if record.getMessage() == message]
    assert len(lines) == 1, f"{message!r} logged {len(lines)} times"
    return lines[0]


def assert_never_shown(
    seen: list[str],
    secrets: dict[str, str],
    *,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """None of the secrets is in what was seen, printed, or logged (every attribute of every log record:
    what the JSON formatter would write, extras included)."""
    printed = capfd.readouterr()
    everything = "\n".join(
        [
            *seen,
            printed.out + printed.err,
            *(json.dumps(vars(record), default=str) for record in caplog.records),
        ]
    )
    for what, value in secrets.items():
        at = everything.find(value)
        assert at < 0, f"the {what} leaked: ...{everything[max(0, at - 300) : at + 50]}"

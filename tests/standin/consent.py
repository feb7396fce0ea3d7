"""What the stand-in's tests share: a client's details, a consent as a browser gives it, and the token
endpoint's two grants."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from broker_local.zoho_standin import ZohoStandIn
from tests.html_form import read_form

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "1000.CLIENTID0123456789"
SECRET = "client-secret-0123456789"
REDIRECT_URI = "http://broker.test/oauth/callback"
SCOPE = "ZohoCRM.modules.ALL,ZohoCRM.settings.ALL"
TOKEN = re.compile(r"^1000\.[0-9a-f]{32}\.[0-9a-f]{32}$")


def auth_url(base: str, **overrides: str) -> str:
    params = {
        "scope": SCOPE,
        "client_id": CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "access_type": "offline",
        "state": "nonce.sub.sig",
        "prompt": "consent",
    }
    params.update(overrides)
    return f"{base}/oauth/v2/auth?{urlencode({k: v for k, v in params.items() if v != 'OMIT'})}"


def consent(
    browser: httpx.Client,
    standin: ZohoStandIn,
    *,
    at: str = "us",
    choose: str | None = None,
    decision: str = "accept",
    **overrides: str,
) -> httpx.Response:
    page = browser.get(auth_url(standin.accounts_servers[at], **overrides))
    assert page.status_code == 200, page.text
    form = read_form(page.text)
    return browser.post(
        str(page.url.join(form.action)),
        data={**form.fields, "data_centre": choose or at, "decision": decision},
    )


def callback_params(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 302, answer.text
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}


def exchange(base: str, code: str, **overrides: str) -> dict[str, Any]:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "redirect_uri": REDIRECT_URI,
    }
    data.update(overrides)
    answer = httpx.post(f"{base}/oauth/v2/token", data=data, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json;charset=UTF-8"
    body: dict[str, Any] = answer.json()
    return body


def refresh(base: str, refresh_token: str, **overrides: str) -> dict[str, Any]:
    data = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
    }
    data.update(overrides)
    answer = httpx.post(f"{base}/oauth/v2/token", data=data, timeout=5)
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def minted_tokens(standin: ZohoStandIn, data_centre: str = "us") -> dict[str, Any]:
    code = standin.issue_code(
        client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, scope=SCOPE, data_centre=data_centre
    )
    return exchange(standin.accounts_servers[data_centre], code)

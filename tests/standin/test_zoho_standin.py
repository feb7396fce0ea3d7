"""broker_local.zoho_standin over real HTTP: it must behave like Zoho's accounts servers, or the broker's
tests against it prove nothing."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from broker_local.zoho_standin import RecordedRequest, ZohoStandIn, api_domain_for

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "1000.CLIENTID0123456789"
SECRET = "client-secret-0123456789"
REDIRECT_URI = "http://broker.test/oauth/callback"
SCOPE = "ZohoCRM.modules.ALL,ZohoCRM.settings.ALL"
TOKEN = re.compile(r"^1000\.[0-9a-f]{32}\.[0-9a-f]{32}$")


@pytest.fixture
def standin() -> Iterator[ZohoStandIn]:
    with ZohoStandIn({"us": 0, "eu": 0}) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    with httpx.Client(follow_redirects=False, timeout=5) as client:
        yield client


class _Form(HTMLParser):
    """What a browser would submit from the consent page."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.options: list[tuple[str, bool]] = []
        self.buttons: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = values["action"]
        elif tag == "input" and values.get("type") == "hidden":
            self.fields[values["name"]] = values["value"]
        elif tag == "option":
            self.options.append((values["value"], "selected" in values))
        elif tag == "button":
            self.buttons.append((values["name"], values["value"]))


def _auth_url(base: str, **overrides: str) -> str:
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


def _consent(
    browser: httpx.Client,
    standin: ZohoStandIn,
    *,
    at: str = "us",
    choose: str | None = None,
    decision: str = "accept",
    **overrides: str,
) -> httpx.Response:
    page = browser.get(_auth_url(standin.accounts_servers[at], **overrides))
    assert page.status_code == 200, page.text
    form = _Form()
    form.feed(page.text)
    return browser.post(
        str(page.url.join(form.action)),
        data={**form.fields, "data_centre": choose or at, "decision": decision},
    )


def _callback(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 302, answer.text
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}


def _exchange(base: str, code: str, **overrides: str) -> dict[str, Any]:
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


def _refresh(base: str, refresh_token: str, **overrides: str) -> dict[str, Any]:
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


def _whoami(base: str, access_token: str) -> httpx.Response:
    return httpx.get(f"{base}/standin/whoami", headers={"Authorization": f"Zoho-oauthtoken {access_token}"})


def _tokens(standin: ZohoStandIn, data_centre: str = "us") -> dict[str, Any]:
    code = standin.issue_code(
        client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, scope=SCOPE, data_centre=data_centre
    )
    return _exchange(standin.accounts_servers[data_centre], code)


# ------------------------------------------------------------------------------------------------
# The consent page


def test_given_an_authorization_request_when_opened_then_an_accessible_consent_page_lists_the_scopes(
    standin: ZohoStandIn, browser: httpx.Client
) -> None:
    page = browser.get(_auth_url(standin.accounts_servers["eu"], scope="ZohoCRM.modules.ALL,<b>Evil</b>"))

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>Zoho Accounts (stand-in)</title>" in page.text
    assert '<meta name="viewport"' in page.text
    assert "ZohoCRM.modules.ALL" in page.text and "&lt;b&gt;Evil&lt;/b&gt;" in page.text
    assert "<b>Evil</b>" not in page.text
    assert CLIENT_ID in page.text
    assert '<label for="data_centre">Your account\'s data centre</label>' in page.text
    assert "<script" not in page.text and "<link" not in page.text and "src=" not in page.text
    form = _Form()
    form.feed(page.text)
    assert form.action == "/oauth/v2/auth/decision"
    assert form.options == [("us", False), ("eu", True)]
    assert form.buttons == [("decision", "accept"), ("decision", "deny")]
    assert form.fields == {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "ZohoCRM.modules.ALL,<b>Evil</b>",
        "state": "nonce.sub.sig",
        "access_type": "offline",
    }


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"client_id": "OMIT"}, "client_id"),
        ({"redirect_uri": "OMIT"}, "redirect_uri"),
        ({"scope": "OMIT"}, "scope"),
        ({"response_type": "token"}, "response_type"),
        ({"redirect_uri": "javascript:alert(1)"}, "redirect_uri"),
    ],
)
def test_given_a_malformed_authorization_request_when_opened_then_a_400_page_names_the_problem(
    standin: ZohoStandIn, browser: httpx.Client, overrides: dict[str, str], problem: str
) -> None:
    page = browser.get(_auth_url(standin.accounts_servers["us"], **overrides))

    assert page.status_code == 400
    assert problem in page.text
    assert "<form" not in page.text


# ------------------------------------------------------------------------------------------------
# The decision and the callback


def test_given_consent_when_accepted_then_the_callback_gets_state_code_location_and_accounts_server(
    standin: ZohoStandIn, browser: httpx.Client
) -> None:
    answer = _consent(browser, standin)

    callback = _callback(answer)
    assert answer.headers["location"].startswith(REDIRECT_URI + "?state=")
    assert callback["state"] == "nonce.sub.sig"
    assert TOKEN.match(callback["code"])
    assert callback["location"] == "us"
    assert callback["accounts-server"] == standin.accounts_servers["us"]
    assert "accounts-server=http%3A%2F%2F127.0.0.1%3A" in answer.headers["location"]


def test_given_a_redirect_uri_with_a_query_when_accepted_then_the_parameters_are_appended_with_ampersand(
    standin: ZohoStandIn, browser: httpx.Client
) -> None:
    answer = _consent(browser, standin, redirect_uri=REDIRECT_URI + "?tenant=a", state="")

    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI + "?tenant=a&code=")
    assert "state" not in _callback(answer)


def test_given_the_us_page_when_the_person_picks_eu_then_the_code_belongs_to_eu_only(
    standin: ZohoStandIn, browser: httpx.Client
) -> None:
    callback = _callback(_consent(browser, standin, at="us", choose="eu"))
    us, eu = standin.accounts_servers["us"], standin.accounts_servers["eu"]

    assert callback["location"] == "eu"
    assert callback["accounts-server"] == eu
    assert _exchange(us, callback["code"]) == {"error": "invalid_code"}
    tokens = _exchange(eu, callback["code"])
    assert tokens["api_domain"] == eu  # the stand-in serves the API where api_domain points
    assert _whoami(eu, tokens["access_token"]).json() == {"data_centre": "eu", "client_id": CLIENT_ID}
    assert _whoami(us, tokens["access_token"]).status_code == 401
    assert _refresh(us, tokens["refresh_token"]) == {"error": "invalid_code"}


def test_given_consent_when_denied_then_the_callback_gets_access_denied_and_no_code(
    standin: ZohoStandIn, browser: httpx.Client
) -> None:
    callback = _callback(_consent(browser, standin, decision="deny"))

    assert callback == {"error": "access_denied", "state": "nonce.sub.sig"}


def test_given_four_codes_this_minute_when_a_fifth_is_asked_then_zoho_shows_access_denied(
    standin: ZohoStandIn, browser: httpx.Client
) -> None:
    for _ in range(4):
        assert _consent(browser, standin).status_code == 302

    blocked = _consent(browser, standin)

    assert blocked.status_code == 200
    assert "location" not in blocked.headers
    assert "Access Denied" in blocked.text and "too many requests" in blocked.text
    assert _consent(browser, standin, client_id="1000.OTHERCLIENT").status_code == 302  # per client


# ------------------------------------------------------------------------------------------------
# The code exchange


def test_given_a_fresh_code_when_exchanged_then_zoho_shaped_tokens_come_back_once(
    standin: ZohoStandIn, browser: httpx.Client
) -> None:
    code = _callback(_consent(browser, standin))["code"]
    base = standin.accounts_servers["us"]

    tokens = _exchange(base, code)

    assert set(tokens) == {"access_token", "refresh_token", "api_domain", "token_type", "expires_in"}
    assert TOKEN.match(tokens["access_token"]) and TOKEN.match(tokens["refresh_token"])
    assert tokens["api_domain"] == base
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    assert _whoami(base, tokens["access_token"]).status_code == 200
    assert _exchange(base, code) == {"error": "invalid_code"}


def test_given_an_online_authorization_when_exchanged_then_no_refresh_token_is_issued(
    standin: ZohoStandIn, browser: httpx.Client
) -> None:
    code = _callback(_consent(browser, standin, access_type="online"))["code"]

    tokens = _exchange(standin.accounts_servers["us"], code)

    assert "access_token" in tokens and "refresh_token" not in tokens


def test_given_a_code_past_its_lifetime_when_exchanged_then_it_is_invalid(browser: httpx.Client) -> None:
    with ZohoStandIn({"us": 0}, code_ttl_seconds=1) as standin:
        code = _callback(_consent(browser, standin))["code"]
        time.sleep(1.1)

        assert _exchange(standin.accounts_servers["us"], code) == {"error": "invalid_code"}


def test_given_a_registered_client_when_the_secret_is_wrong_then_invalid_client_secret(
    standin: ZohoStandIn,
) -> None:
    standin.register_client(CLIENT_ID, SECRET)
    code = standin.issue_code(client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, scope=SCOPE, data_centre="us")
    base = standin.accounts_servers["us"]

    assert _exchange(base, code, client_secret="wrong") == {"error": "invalid_client_secret"}
    assert _exchange(base, code, client_id="1000.SOMEONEELSE") == {"error": "invalid_client"}
    assert "access_token" in _exchange(base, code)  # a rejected attempt does not spend the code


def test_given_an_unregistered_client_when_any_secret_is_sent_then_it_is_accepted(
    standin: ZohoStandIn,
) -> None:
    code = standin.issue_code(client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, scope=SCOPE, data_centre="us")

    assert "access_token" in _exchange(standin.accounts_servers["us"], code, client_secret="anything")


def test_given_a_code_when_exchanged_with_another_redirect_uri_then_invalid_redirect_uri(
    standin: ZohoStandIn,
) -> None:
    code = standin.issue_code(client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, scope=SCOPE, data_centre="us")

    answer = _exchange(standin.accounts_servers["us"], code, redirect_uri="http://elsewhere.test/cb")

    assert answer == {"error": "invalid_redirect_uri"}


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({}, "unsupported_grant_type"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "code": "1000.x"}, "invalid_request"),
        ({"grant_type": "refresh_token", "client_id": CLIENT_ID}, "invalid_request"),
    ],
)
def test_given_an_incomplete_token_request_then_zoho_answers_200_with_an_error(
    standin: ZohoStandIn, data: dict[str, str], error: str
) -> None:
    answer = httpx.post(f"{standin.accounts_servers['us']}/oauth/v2/token", data=data)

    assert answer.status_code == 200
    assert answer.json() == {"error": error}


def test_given_the_parameters_in_the_query_string_or_the_form_body_then_both_are_accepted(
    standin: ZohoStandIn,
) -> None:
    base = standin.accounts_servers["us"]
    params = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "redirect_uri": REDIRECT_URI,
    }
    as_query = standin.issue_code(
        client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, scope=SCOPE, data_centre="us"
    )
    as_form = standin.issue_code(
        client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, scope=SCOPE, data_centre="us"
    )

    by_query = httpx.post(f"{base}/oauth/v2/token", params={**params, "code": as_query}).json()
    by_form = httpx.post(f"{base}/oauth/v2/token", data={**params, "code": as_form}).json()

    assert "access_token" in by_query and "access_token" in by_form


# ------------------------------------------------------------------------------------------------
# Refresh and revocation


def test_given_a_refresh_token_when_refreshed_then_a_new_access_token_and_no_refresh_token(
    standin: ZohoStandIn,
) -> None:
    tokens = _tokens(standin)
    base = standin.accounts_servers["us"]

    refreshed = _refresh(base, tokens["refresh_token"])

    assert set(refreshed) == {"access_token", "api_domain", "token_type", "expires_in"}
    assert refreshed["access_token"] != tokens["access_token"]
    assert _whoami(base, refreshed["access_token"]).status_code == 200
    assert _whoami(base, tokens["access_token"]).status_code == 200  # older ones stay valid
    assert _refresh(base, tokens["refresh_token"], client_id="1000.SOMEONEELSE") == {
        "error": "invalid_client"
    }


def test_given_a_revoked_refresh_token_when_refreshed_then_invalid_code_and_its_access_tokens_die(
    standin: ZohoStandIn,
) -> None:
    tokens = _tokens(standin)
    base = standin.accounts_servers["us"]

    revoked = httpx.post(f"{base}/oauth/v2/token/revoke", params={"token": tokens["refresh_token"]})

    assert revoked.status_code == 200 and revoked.json() == {"status": "success"}
    assert _refresh(base, tokens["refresh_token"]) == {"error": "invalid_code"}
    assert _whoami(base, tokens["access_token"]).status_code == 401
    unknown = httpx.post(f"{base}/oauth/v2/token/revoke", params={"token": "1000.unknown"})
    assert unknown.json() == {"status": "success"}
    assert standin.token_call_count == 2  # the exchange and the refresh; revocations are not counted


def test_given_the_user_removes_the_app_when_revoke_all_then_every_refresh_token_dies_at_that_dc(
    standin: ZohoStandIn,
) -> None:
    us, eu = _tokens(standin, "us"), _tokens(standin, "eu")

    standin.revoke_all("us")

    assert _refresh(standin.accounts_servers["us"], us["refresh_token"]) == {"error": "invalid_code"}
    assert "access_token" in _refresh(standin.accounts_servers["eu"], eu["refresh_token"])
    standin.revoke_all()
    assert _refresh(standin.accounts_servers["eu"], eu["refresh_token"]) == {"error": "invalid_code"}


def test_given_30_live_access_tokens_when_a_31st_is_minted_then_the_oldest_dies(
    standin: ZohoStandIn,
) -> None:
    tokens = _tokens(standin)  # access token 1 of 30
    base = standin.accounts_servers["us"]
    for _ in range(29):
        assert "access_token" in _refresh(base, tokens["refresh_token"])
    assert _whoami(base, tokens["access_token"]).status_code == 200

    newest = _refresh(base, tokens["refresh_token"])["access_token"]

    first = _whoami(base, tokens["access_token"])
    assert first.status_code == 401 and first.json() == {"code": "INVALID_TOKEN"}
    assert _whoami(base, newest).status_code == 200


# ------------------------------------------------------------------------------------------------
# Faults and latency


@pytest.mark.parametrize(
    ("fault", "status", "body"),
    [
        ("server_error", 500, "Internal Server Error"),
        ("unavailable", 503, "Service Unavailable"),
        ("invalid_code", 200, '{"error": "invalid_code"}'),
        (
            "rate_limited",
            200,
            '{"error": "access_denied", "error_description": "You have made too many requests '
            'continuously. Please try again after some time."}',
        ),
    ],
)
def test_given_an_injected_fault_when_the_token_endpoint_is_called_then_it_fails_that_way_once(
    standin: ZohoStandIn, fault: str, status: int, body: str
) -> None:
    code = standin.issue_code(client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, scope=SCOPE, data_centre="us")
    base = standin.accounts_servers["us"]
    standin.inject_fault(fault)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "redirect_uri": REDIRECT_URI,
    }

    failed = httpx.post(f"{base}/oauth/v2/token", data=data)

    assert failed.status_code == status
    assert body in failed.text
    if status >= 500:
        assert failed.headers["content-type"].startswith("text/html")
    assert "access_token" in httpx.post(f"{base}/oauth/v2/token", data=data).json()  # code not spent
    assert standin.token_call_count == 2


def test_given_a_fault_for_one_dc_and_a_count_then_only_those_requests_fail(standin: ZohoStandIn) -> None:
    us, eu = standin.accounts_servers["us"], standin.accounts_servers["eu"]
    standin.inject_fault("unavailable", count=2, data_centre="eu")

    statuses = [httpx.post(f"{base}/oauth/v2/token").status_code for base in (us, eu, eu, eu)]

    assert statuses == [200, 503, 503, 200]
    standin.inject_fault("server_error", count=3)
    standin.clear_faults()
    assert httpx.post(f"{us}/oauth/v2/token").status_code == 200
    with pytest.raises(ValueError, match="unknown fault"):
        standin.inject_fault("meltdown")


def test_given_a_timeout_fault_when_called_then_the_client_times_out_and_stop_is_prompt() -> None:
    standin = ZohoStandIn({"us": 0}).start()
    try:
        standin.inject_fault("timeout")
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{standin.accounts_servers['us']}/oauth/v2/token", timeout=0.3)
    finally:
        started = time.monotonic()
        standin.stop()
    assert time.monotonic() - started < 2


def test_given_latency_when_the_token_endpoint_is_called_then_the_answer_is_delayed(
    standin: ZohoStandIn,
) -> None:
    base = standin.accounts_servers["us"]
    standin.set_latency(0.3)

    started = time.monotonic()
    httpx.post(f"{base}/oauth/v2/token")
    slow = time.monotonic() - started
    standin.set_latency(0)
    started = time.monotonic()
    httpx.get(f"{base}/oauth/serverinfo")
    fast = time.monotonic() - started

    assert slow >= 0.3
    assert fast < 0.3


# ------------------------------------------------------------------------------------------------
# Everything else


def test_given_requests_at_both_dcs_then_each_is_recorded_in_order_with_merged_params(
    standin: ZohoStandIn,
) -> None:
    us, eu = standin.accounts_servers["us"], standin.accounts_servers["eu"]

    httpx.get(f"{eu}/oauth/serverinfo")
    httpx.post(f"{us}/oauth/v2/token?grant_type=refresh_token", data={"client_id": CLIENT_ID})
    httpx.get(f"{us}/nowhere")

    assert standin.requests == [
        RecordedRequest("eu", "GET", "/oauth/serverinfo", {}),
        RecordedRequest(
            "us", "POST", "/oauth/v2/token", {"grant_type": "refresh_token", "client_id": CLIENT_ID}
        ),
        RecordedRequest("us", "GET", "/nowhere", {}),
    ]
    assert standin.token_call_count == 1


def test_given_serverinfo_then_every_dc_is_listed_like_zoho_does(standin: ZohoStandIn) -> None:
    answer = httpx.get(f"{standin.accounts_servers['eu']}/oauth/serverinfo")

    assert answer.json() == {"result": "success", "locations": standin.accounts_servers}


def test_given_an_unknown_path_or_a_bad_token_then_json_errors(standin: ZohoStandIn) -> None:
    base = standin.accounts_servers["us"]

    missing = httpx.get(f"{base}/oauth/v3/nothing")

    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert httpx.get(f"{base}/standin/whoami").status_code == 401
    assert _whoami(base, "1000.nope").json() == {"code": "INVALID_TOKEN"}


@pytest.mark.parametrize(
    ("data_centre", "domain"),
    [
        ("us", "https://www.zohoapis.com"),
        ("eu", "https://www.zohoapis.eu"),
        ("in", "https://www.zohoapis.in"),
        ("au", "https://www.zohoapis.com.au"),
        ("jp", "https://www.zohoapis.jp"),
        ("ca", "https://www.zohoapis.ca"),
        ("sa", "https://www.zohoapis.sa"),
        ("uk", "https://www.zohoapis.uk"),
        ("cn", "https://www.zohoapis.cn"),
    ],
)
def test_given_a_data_centre_then_its_api_domain_is_zohos(data_centre: str, domain: str) -> None:
    assert api_domain_for(data_centre) == domain


def test_given_the_command_line_then_it_serves_and_prints_the_accounts_servers() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "broker_local.zoho_standin", "--dc", "us=0", "--dc", "eu=0"],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'layers' / 'broker'}:{ROOT / 'local'}", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(2)]
        servers = dict(line.split(": ", 1) for line in lines)

        assert set(servers) == {"us", "eu"}
        assert httpx.get(f"{servers['eu']}/oauth/serverinfo").json()["locations"] == servers
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_the_self_client_page_issues_a_one_use_code_valid_only_at_its_data_centre(
    standin: ZohoStandIn,
) -> None:
    us, eu = standin.accounts_servers["us"], standin.accounts_servers["eu"]
    page = httpx.post(
        f"{eu}/standin/self-client", data={"client_id": CLIENT_ID, "scope": "ZohoCRM.modules.ALL"}
    )
    found = re.search(r'<code id="grant-code">([^<]+)</code>', page.text)
    assert page.status_code == 200 and found is not None
    form = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": "s",
        "code": found.group(1),
    }

    elsewhere = httpx.post(f"{us}/oauth/v2/token", data=form).json()
    exchanged = httpx.post(f"{eu}/oauth/v2/token", data=form).json()
    again = httpx.post(f"{eu}/oauth/v2/token", data=form).json()

    assert elsewhere == {"error": "invalid_code"}
    assert "refresh_token" in exchanged and exchanged["api_domain"] == eu
    assert again == {"error": "invalid_code"}

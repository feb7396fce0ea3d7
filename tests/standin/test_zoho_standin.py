"""broker_local.zoho_standin over real HTTP: it must behave like Zoho's accounts servers, or the broker's
tests against it prove nothing."""

from __future__ import annotations

import time

import httpx
import pytest
from consent import (
    CLIENT_ID,
    REDIRECT_URI,
    SCOPE,
    SECRET,
    TOKEN,
    auth_url,
    callback_params,
    consent,
    exchange,
    minted_tokens,
    refresh,
)

from broker_local.zoho_standin import ZohoStandIn
from tests.html_form import read_form
from tests.whoami import whoami

# ------------------------------------------------------------------------------------------------
# The consent page


def test_the_consent_page_is_accessible_and_lists_the_scopes(
    standin: ZohoStandIn, browser: httpx.Client
) -> None:
    page = browser.get(auth_url(standin.accounts_servers["eu"], scope="ZohoCRM.modules.ALL,<b>Evil</b>"))

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>Zoho Accounts (stand-in)</title>" in page.text
    assert '<meta name="viewport"' in page.text
    assert "ZohoCRM.modules.ALL" in page.text and "&lt;b&gt;Evil&lt;/b&gt;" in page.text
    assert "<b>Evil</b>" not in page.text
    assert CLIENT_ID in page.text
    assert '<label for="data_centre">Your account\'s data centre</label>' in page.text
    assert "<script" not in page.text and "<link" not in page.text and "src=" not in page.text
    form = read_form(page.text)
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
def test_a_malformed_authorization_request_gets_a_400_page_naming_the_problem(
    standin: ZohoStandIn, browser: httpx.Client, overrides: dict[str, str], problem: str
) -> None:
    page = browser.get(auth_url(standin.accounts_servers["us"], **overrides))

    assert page.status_code == 400
    assert problem in page.text
    assert "<form" not in page.text


# ------------------------------------------------------------------------------------------------
# The decision and the callback


def test_an_accepted_consent_calls_back_with_state_code_and_location(
    standin: ZohoStandIn, browser: httpx.Client
) -> None:
    answer = consent(browser, standin)

    callback = callback_params(answer)
    assert answer.headers["location"].startswith(REDIRECT_URI + "?state=")
    assert callback["state"] == "nonce.sub.sig"
    assert TOKEN.match(callback["code"])
    assert callback["location"] == "us"
    assert callback["accounts-server"] == standin.accounts_servers["us"]
    assert "accounts-server=http%3A%2F%2F127.0.0.1%3A" in answer.headers["location"]


def test_callback_parameters_are_appended_to_a_redirect_uris_query(
    standin: ZohoStandIn, browser: httpx.Client
) -> None:
    answer = consent(browser, standin, redirect_uri=REDIRECT_URI + "?tenant=a", state="")

    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI + "?tenant=a&code=")
    assert "state" not in callback_params(answer)


def test_the_data_centre_picked_owns_the_code(standin: ZohoStandIn, browser: httpx.Client) -> None:
    # Given the US page, when the person picks EU, then the code belongs to EU only.
    callback = callback_params(consent(browser, standin, at="us", choose="eu"))
    us, eu = standin.accounts_servers["us"], standin.accounts_servers["eu"]

    assert callback["location"] == "eu"
    assert callback["accounts-server"] == eu
    assert exchange(us, callback["code"]) == {"error": "invalid_code"}
    tokens = exchange(eu, callback["code"])
    assert tokens["api_domain"] == eu  # the stand-in serves the API where api_domain points
    assert whoami(eu, tokens["access_token"]).json() == {"data_centre": "eu", "client_id": CLIENT_ID}
    assert whoami(us, tokens["access_token"]).status_code == 401
    assert refresh(us, tokens["refresh_token"]) == {"error": "invalid_code"}


def test_a_denied_consent_calls_back_with_access_denied_and_no_code(
    standin: ZohoStandIn, browser: httpx.Client
) -> None:
    callback = callback_params(consent(browser, standin, decision="deny"))

    assert callback == {"error": "access_denied", "state": "nonce.sub.sig"}


def test_a_fifth_code_in_a_minute_is_denied(standin: ZohoStandIn, browser: httpx.Client) -> None:
    # Given four codes this minute, when a fifth is asked for, then Zoho shows access denied.
    for _ in range(4):
        assert consent(browser, standin).status_code == 302

    blocked = consent(browser, standin)

    assert blocked.status_code == 200
    assert "location" not in blocked.headers
    assert "Access Denied" in blocked.text and "too many requests" in blocked.text
    assert consent(browser, standin, client_id="1000.OTHERCLIENT").status_code == 302  # per client


# ------------------------------------------------------------------------------------------------
# The code exchange


def test_a_fresh_code_is_exchanged_for_zoho_shaped_tokens_once(
    standin: ZohoStandIn, browser: httpx.Client
) -> None:
    code = callback_params(consent(browser, standin))["code"]
    base = standin.accounts_servers["us"]

    tokens = exchange(base, code)

    assert set(tokens) == {"access_token", "refresh_token", "api_domain", "token_type", "expires_in"}
    assert TOKEN.match(tokens["access_token"]) and TOKEN.match(tokens["refresh_token"])
    assert tokens["api_domain"] == base
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    assert whoami(base, tokens["access_token"]).status_code == 200
    assert exchange(base, code) == {"error": "invalid_code"}


def test_an_online_authorization_gets_no_refresh_token(standin: ZohoStandIn, browser: httpx.Client) -> None:
    code = callback_params(consent(browser, standin, access_type="online"))["code"]

    tokens = exchange(standin.accounts_servers["us"], code)

    assert "access_token" in tokens and "refresh_token" not in tokens


def test_an_expired_code_is_invalid(browser: httpx.Client) -> None:
    with ZohoStandIn({"us": 0}, code_ttl_seconds=1) as standin:
        code = callback_params(consent(browser, standin))["code"]
        time.sleep(1.1)

        assert exchange(standin.accounts_servers["us"], code) == {"error": "invalid_code"}


def test_a_wrong_secret_for_a_registered_client_is_invalid_client(
    standin: ZohoStandIn,
) -> None:
    standin.register_client(CLIENT_ID, SECRET)
    code = standin.issue_code(client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, scope=SCOPE, data_centre="us")
    base = standin.accounts_servers["us"]

    assert exchange(base, code, client_secret="wrong") == {"error": "invalid_client"}
    assert exchange(base, code, client_id="1000.SOMEONEELSE") == {"error": "invalid_client"}
    assert "access_token" in exchange(base, code)  # a rejected attempt does not spend the code


def test_an_unregistered_client_is_accepted_with_any_secret(
    standin: ZohoStandIn,
) -> None:
    code = standin.issue_code(client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, scope=SCOPE, data_centre="us")

    assert "access_token" in exchange(standin.accounts_servers["us"], code, client_secret="anything")


def test_another_redirect_uri_at_exchange_is_invalid_redirect_uri(
    standin: ZohoStandIn,
) -> None:
    code = standin.issue_code(client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, scope=SCOPE, data_centre="us")

    answer = exchange(standin.accounts_servers["us"], code, redirect_uri="http://elsewhere.test/cb")

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
def test_an_incomplete_token_request_gets_200_with_an_error(
    standin: ZohoStandIn, data: dict[str, str], error: str
) -> None:
    answer = httpx.post(f"{standin.accounts_servers['us']}/oauth/v2/token", data=data)

    assert answer.status_code == 200
    assert answer.json() == {"error": error}


def test_token_parameters_are_accepted_in_the_query_or_the_body(
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


def test_a_refresh_gives_a_new_access_token_and_no_refresh_token(
    standin: ZohoStandIn,
) -> None:
    tokens = minted_tokens(standin)
    base = standin.accounts_servers["us"]

    refreshed = refresh(base, tokens["refresh_token"])

    assert set(refreshed) == {"access_token", "api_domain", "token_type", "expires_in"}
    assert refreshed["access_token"] != tokens["access_token"]
    assert whoami(base, refreshed["access_token"]).status_code == 200
    assert whoami(base, tokens["access_token"]).status_code == 200  # older ones stay valid
    assert refresh(base, tokens["refresh_token"], client_id="1000.SOMEONEELSE") == {"error": "invalid_client"}


def test_a_revoked_refresh_token_is_invalid_code_and_its_access_tokens_die(
    standin: ZohoStandIn,
) -> None:
    tokens = minted_tokens(standin)
    base = standin.accounts_servers["us"]

    revoked = httpx.post(f"{base}/oauth/v2/token/revoke", params={"token": tokens["refresh_token"]})

    assert revoked.status_code == 200 and revoked.json() == {"status": "success"}
    assert refresh(base, tokens["refresh_token"]) == {"error": "invalid_code"}
    assert whoami(base, tokens["access_token"]).status_code == 401
    unknown = httpx.post(f"{base}/oauth/v2/token/revoke", params={"token": "1000.unknown"})
    assert unknown.json() == {"status": "success"}
    assert standin.token_call_count == 2  # the exchange and the refresh; revocations are not counted


def test_removing_the_app_revokes_every_refresh_token_at_that_dc(
    standin: ZohoStandIn,
) -> None:
    us, eu = minted_tokens(standin, "us"), minted_tokens(standin, "eu")

    standin.revoke_all("us")

    assert refresh(standin.accounts_servers["us"], us["refresh_token"]) == {"error": "invalid_code"}
    assert "access_token" in refresh(standin.accounts_servers["eu"], eu["refresh_token"])
    standin.revoke_all()
    assert refresh(standin.accounts_servers["eu"], eu["refresh_token"]) == {"error": "invalid_code"}


def test_a_31st_access_token_kills_the_oldest(
    standin: ZohoStandIn,
) -> None:
    # Given 30 live access tokens, when a 31st is minted, then the oldest dies.
    tokens = minted_tokens(standin)  # access token 1 of 30
    base = standin.accounts_servers["us"]
    for _ in range(29):
        assert "access_token" in refresh(base, tokens["refresh_token"])
    assert whoami(base, tokens["access_token"]).status_code == 200

    newest = refresh(base, tokens["refresh_token"])["access_token"]

    first = whoami(base, tokens["access_token"])
    assert first.status_code == 401 and first.json() == {"code": "INVALID_TOKEN"}
    assert whoami(base, newest).status_code == 200

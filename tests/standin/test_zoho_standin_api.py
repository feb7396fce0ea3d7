"""The Zoho stand-in's API over real HTTP: accounts belong to organizations, CRM's org and records with
paging, Commerce's organizations and its organization header, the per-organization concurrency limit,
and INVALID_OAUTHTOKEN for every token Zoho would refuse."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from broker_local.zoho_standin import ZohoStandIn

CLIENT_ID = "1000.CLIENTID0123456789"
SECRET = "client-secret-0123456789"
REDIRECT_URI = "http://broker.test/oauth/callback"
SCOPE = "ZohoCRM.modules.ALL,ZohoCRM.org.READ"
INVALID_OAUTHTOKEN = {
    "code": "INVALID_OAUTHTOKEN",
    "details": {},
    "message": "invalid oauth token",
    "status": "error",
}


@pytest.fixture
def standin() -> Iterator[ZohoStandIn]:
    with ZohoStandIn({"us": 0, "eu": 0}) as running:
        yield running


def _tokens(standin: ZohoStandIn, *, dc: str = "eu", account: str | None = None) -> dict[str, Any]:
    code = standin.issue_code(
        client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, scope=SCOPE, data_centre=dc, account=account
    )
    answer = _exchange(standin.accounts_servers[dc], code)
    assert "access_token" in answer, answer
    return dict(answer)


def _exchange(base: str, code: str) -> dict[str, Any]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "redirect_uri": REDIRECT_URI,
    }
    return dict(httpx.post(f"{base}/oauth/v2/token", data=form).json())


def _call(tokens: dict[str, Any], method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Zoho-oauthtoken {tokens['access_token']}", **kwargs.pop("headers", {})}
    return httpx.request(method, f"{tokens['api_domain']}{path}", headers=headers, timeout=10, **kwargs)


def test_tokens_reach_the_organization_of_the_account_signed_in(
    standin: ZohoStandIn,
) -> None:
    # Given the consent page, when a person signs in as another account, then the tokens reach its organization.
    eu = standin.accounts_servers["eu"]
    page = httpx.get(
        f"{eu}/oauth/v2/auth",
        params={
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": SCOPE,
            "response_type": "code",
        },
    )
    accounts = re.findall(r'type="radio"[^>]*name="account" value="([^"]+)"', page.text)

    form = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "access_type": "offline",
        "state": "s",
        "data_centre": "eu",
        "decision": "accept",
    }
    decision = httpx.post(f"{eu}/oauth/v2/auth/decision", data={**form, "account": accounts[1]})
    code = parse_qs(urlsplit(decision.headers["location"]).query)["code"][0]
    tokens = _exchange(eu, code)

    assert accounts == ["owner@acme.example", "admin@globex.example"]
    assert "Globex Corporation" in page.text
    assert tokens["api_domain"] == eu
    org = _call(tokens, "GET", "/crm/v8/org")
    assert org.status_code == 200
    assert org.json()["org"][0]["id"] == "4000000002"
    assert org.json()["org"][0]["company_name"] == "Globex Corporation"
    unknown = httpx.post(
        f"{eu}/oauth/v2/auth/decision",
        data={**form, "account": "nobody@example.com"},
    )
    assert unknown.status_code == 400


def test_a_refreshed_access_token_reaches_the_same_organization(standin: ZohoStandIn) -> None:
    tokens = _tokens(standin, account="admin@globex.example")
    refreshed = httpx.post(
        f"{standin.accounts_servers['eu']}/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
        },
    ).json()

    assert _call(refreshed, "GET", "/crm/v8/org").json()["org"][0]["company_name"] == "Globex Corporation"


def test_paging_stops_when_more_records_is_false(
    standin: ZohoStandIn,
) -> None:
    # Given records, when listed page by page, then info.more_records says when to stop.
    tokens = _tokens(standin)
    standin.api.add_records("4000000001", "Leads", 5)

    pages = [_call(tokens, "GET", "/crm/v8/Leads", params={"page": n, "per_page": 2}) for n in (1, 2, 3, 4)]

    assert [p.status_code for p in pages] == [200, 200, 200, 204]
    assert [p.json()["info"]["more_records"] for p in pages[:3]] == [True, True, False]
    assert [len(p.json()["data"]) for p in pages[:3]] == [2, 2, 1]
    assert pages[3].content == b""
    assert _call(tokens, "GET", "/crm/v8/Leads", params={"per_page": 201}).json()["code"] == "INVALID_DATA"
    assert _call(tokens, "GET", "/crm/v8/Nope").json()["code"] == "INVALID_MODULE"
    # Another organization's token sees none of them.
    other = _tokens(standin, account="admin@globex.example")
    assert _call(other, "GET", "/crm/v8/Leads").status_code == 204


def test_records_are_created_read_updated_and_deleted(standin: ZohoStandIn) -> None:
    tokens = _tokens(standin)

    created = _call(tokens, "POST", "/crm/v8/Contacts", json={"data": [{"Last_Name": "Ng"}]})
    record_id = created.json()["data"][0]["details"]["id"]
    updated = _call(tokens, "PUT", f"/crm/v8/Contacts/{record_id}", json={"data": [{"Last_Name": "Ngo"}]})
    read = _call(tokens, "GET", f"/crm/v8/Contacts/{record_id}")
    deleted = _call(tokens, "DELETE", f"/crm/v8/Contacts/{record_id}")
    gone = _call(tokens, "GET", f"/crm/v8/Contacts/{record_id}")

    assert created.status_code == 201 and created.json()["data"][0]["code"] == "SUCCESS"
    assert updated.status_code == 200 and updated.json()["data"][0]["message"] == "record updated"
    assert read.json()["data"][0]["Last_Name"] == "Ngo"
    assert deleted.json()["data"][0]["message"] == "record deleted"
    assert gone.status_code == 204
    assert _call(tokens, "POST", "/crm/v8/Contacts", content=b"{not json").json()["code"] == "INVALID_DATA"
    assert standin.api.records("4000000001", "Contacts") == {}


def test_commerce_products_need_the_organization_header(
    standin: ZohoStandIn,
) -> None:
    tokens = _tokens(standin)

    listed = _call(tokens, "GET", "/store/api/v1/organizations")
    own = _call(tokens, "GET", "/store/api/v1/organizations/4000000001")
    foreign = _call(tokens, "GET", "/store/api/v1/organizations/4000000002")
    bare = _call(tokens, "GET", "/store/api/v1/products")
    headed = _call(
        tokens, "GET", "/store/api/v1/products", headers={"X-com-zoho-store-organizationid": "4000000001"}
    )

    assert listed.json()["organizations"] == [{"organization_id": "4000000001", "name": "Acme Ltd"}]
    assert own.json()["organization"]["name"] == "Acme Ltd"
    assert foreign.status_code == 401 and foreign.json()["code"] == 57
    assert bare.status_code == 400 and set(bare.json()) == {"code", "message"}
    assert headed.status_code == 200 and headed.json()["page_context"]["has_more_page"] is False
    recorded = standin.api.requests[-1]
    assert recorded.headers["x-com-zoho-store-organizationid"] == "4000000001"
    assert "authorization" not in recorded.headers


def test_calls_beyond_the_concurrency_limit_get_too_many_requests(
    standin: ZohoStandIn,
) -> None:
    acme, globex = _tokens(standin), _tokens(standin, account="admin@globex.example")
    standin.api.set_concurrency_limit(2)
    standin.api.set_latency(1.5)  # long enough that all five calls overlap on a busy machine

    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(lambda t: _call(t, "GET", "/crm/v8/org"), [acme, acme, acme, acme, globex]))
    standin.api.set_latency(0)

    statuses = sorted(a.status_code for a in answers[:4])
    assert statuses == [200, 200, 429, 429]
    refused = next(a for a in answers if a.status_code == 429).json()
    assert refused["code"] == "TOO_MANY_REQUESTS" and refused["status"] == "error"
    assert answers[4].status_code == 200  # the limit is per organization
    assert standin.api.peak_in_flight["4000000001"] == 2
    assert _call(acme, "GET", "/crm/v8/org").status_code == 200  # calls finished free their places


def test_a_refused_token_gets_invalid_oauthtoken(
    standin: ZohoStandIn,
) -> None:
    tokens = _tokens(standin, dc="eu")
    revoked = _tokens(standin, dc="eu")
    httpx.post(
        f"{standin.accounts_servers['eu']}/oauth/v2/token/revoke", params={"token": revoked["refresh_token"]}
    )
    wrong_place = {**tokens, "api_domain": standin.accounts_servers["us"]}

    unknown = _call({**tokens, "access_token": "1000.nope"}, "GET", "/crm/v8/org")
    missing = httpx.get(f"{tokens['api_domain']}/crm/v8/org")
    at_us = _call(wrong_place, "GET", "/crm/v8/org")
    after_revoke = _call(revoked, "GET", "/crm/v8/org")
    fine = _call(tokens, "GET", "/crm/v8/org")
    standin.expire_access_tokens()
    expired = _call(tokens, "GET", "/store/api/v1/organizations")

    for answer in (unknown, missing, at_us, after_revoke, expired):
        assert answer.status_code == 401 and answer.json() == INVALID_OAUTHTOKEN
    assert fine.status_code == 200


def test_token_answers_name_zohos_api_domains_when_asked() -> None:
    with ZohoStandIn({"eu": 0}, zoho_api_domains=True) as standin:
        eu = standin.accounts_servers["eu"]
        code = standin.issue_code(
            client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, scope=SCOPE, data_centre="eu"
        )

        assert _exchange(eu, code)["api_domain"] == "https://www.zohoapis.eu"

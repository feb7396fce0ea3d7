"""The proxy as a sync job meets it: over real HTTP through the local gateway and ProxyFunction's handler,
to the Zoho stand-in's API, with moto for AWS."""

from __future__ import annotations

import http.client
import logging
from typing import Any

import httpx
import pytest

from broker_local.gateway import LocalApiGateway
from broker_local.zoho_standin import ZohoStandIn
from broker_local.zoho_standin_files import FilesApi
from tests.clocks import VirtualClock
from tests.integration.flow import assert_never_shown, create_subscription, logged_once
from tests.integration.proxying import ORGANIZATION, connected
from tests.integration.stored import age_connection
from zoho_broker.logic import lease, token_recovery
from zoho_broker.services import get_services


def _api_calls(zoho: ZohoStandIn) -> list[Any]:
    return zoho.api.requests


def test_a_crm_call_reaches_zoho_with_the_token_and_without_the_callers_credentials(
    gateway: LocalApiGateway, admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    sid = connected(admin, browser)
    answer = admin.get(
        f"/proxy/{sid}/org",
        headers={
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261124/eu-west-1/execute-api",
            "X-Amz-Date": "20261124T000000Z",
            "X-Amz-Security-Token": "session-token",
            "Cookie": "session=abc",
            "Connection": "X-Private-Hop",
            "X-Private-Hop": "1",
            "X-Broker-Max-Wait": "2",
            "If-None-Match": '"v1"',
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["org"][0]["id"] == ORGANIZATION
    call = _api_calls(zoho)[-1]
    assert (call.method, call.path, call.organization_id) == ("GET", "/crm/v8/org", ORGANIZATION)
    for dropped in ("x-amz-date", "x-amz-security-token", "cookie", "x-private-hop", "x-broker-max-wait"):
        assert dropped not in call.headers
    assert not any(name.startswith(("x-forwarded-", "x-amzn-")) for name in call.headers)
    assert call.headers["if-none-match"] == '"v1"'


def test_records_are_created_paged_updated_and_deleted_through_the_proxy(
    gateway: LocalApiGateway, admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    sid = connected(admin, browser)
    created = admin.post(f"/proxy/{sid}/Leads", json={"data": [{"Last_Name": "Ng"}, {"Last_Name": "Ode"}]})
    assert created.status_code == 201, created.text
    first_id = created.json()["data"][0]["details"]["id"]
    page = admin.get(f"/proxy/{sid}/Leads", params={"page": 1, "per_page": 1})
    assert page.status_code == 200, (page.status_code, page.text, zoho.api.requests[-1])
    assert page.json()["info"] == {"per_page": 1, "count": 1, "page": 1, "more_records": True}
    assert zoho.api.requests[-1].params == {"page": "1", "per_page": "1"}
    updated = admin.put(f"/proxy/{sid}/Leads/{first_id}", json={"data": [{"Last_Name": "Nguyen"}]})
    assert updated.status_code == 200
    assert zoho.api.records(ORGANIZATION, "Leads")[first_id]["Last_Name"] == "Nguyen"
    deleted = admin.delete(f"/proxy/{sid}/Leads", params={"ids": first_id})
    assert deleted.json()["data"][0]["code"] == "SUCCESS"
    assert first_id not in zoho.api.records(ORGANIZATION, "Leads")


@pytest.mark.parametrize(
    "path",
    [
        "../oauth/v2/token",
        "Leads/../../../v2/org",
        "%2e%2e/%2e%2e/oauth/v2/token",
        "Leads%2F..%2F..%2Forg",
        "Leads%5c..%5corg",
        "https://evil.example/x",
        "https:%2F%2Fevil.example/x",
        "/evil.example/x",
        "Leads/%00",
    ],
)
def test_paths_that_would_leave_the_api_base_are_refused_and_nothing_is_sent(
    gateway: LocalApiGateway, admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, path: str
) -> None:
    sid = connected(admin, browser)
    before = len(zoho.requests), len(_api_calls(zoho))
    # http.client sends the request target exactly as given (httpx would normalise dot segments).
    connection = http.client.HTTPConnection(gateway.host, gateway.port, timeout=10)
    connection.request("GET", f"/proxy/{sid}/{path}", headers={"Host": "evil.example"})
    answer = connection.getresponse()
    body = answer.read()
    connection.close()
    assert answer.status == 400, body
    assert answer.getheader("x-broker-error") == "invalid_request"
    assert (len(zoho.requests), len(_api_calls(zoho))) == before


def test_a_foreign_host_header_does_not_move_the_call(
    gateway: LocalApiGateway, admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    sid = connected(admin, browser)
    answer = admin.get(
        f"/proxy/{sid}/org", headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    )
    assert answer.status_code == 200
    assert _api_calls(zoho)[-1].path == "/crm/v8/org"


def test_a_folded_header_cannot_inject_another(
    gateway: LocalApiGateway, admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    sid = connected(admin, browser)
    calls = len(_api_calls(zoho))
    connection = http.client.HTTPConnection(gateway.host, gateway.port, timeout=10)
    # An obsolete line folding tries to start a second header inside the first one's value. The HTTP
    # layer in front of the proxy unfolds it (API Gateway's does too); a value that still carried a line
    # break would be refused (tests/unit/test_proxy_rules.py::test_header_injection_is_refused).
    connection.putrequest("GET", f"/proxy/{sid}/org")
    connection.putheader("X-Note", "a\r\n\tX-Injected: 1")
    connection.endheaders()
    answer = connection.getresponse()
    answer.read()
    connection.close()

    assert answer.status == 200
    [sent] = _api_calls(zoho)[calls:]
    assert "x-injected" not in sent.headers
    assert sent.headers["x-note"] == "a\tX-Injected: 1"


def test_commerce_calls_carry_the_subscriptions_organization_header(
    gateway: LocalApiGateway, admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    sid = connected(
        admin, browser, integration="zoho-commerce", custom_fields={"OrganizationId": ORGANIZATION}
    )
    answer = admin.get(f"/proxy/{sid}/products", headers={"X-com-zoho-store-organizationid": "4000000002"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["products"][0]["name"] == "Acme Ltd sample product"
    call = _api_calls(zoho)[-1]
    assert call.path == "/store/api/v1/products"
    assert call.headers["x-com-zoho-store-organizationid"] == ORGANIZATION


def test_a_token_zoho_invalidated_is_refreshed_once_and_the_call_retried_once(
    gateway: LocalApiGateway,
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sid = connected(admin, browser)
    assert admin.get(f"/proxy/{sid}/org").status_code == 200  # the token is now cached in the instance
    age_connection(get_services(), sid, seconds=120)
    old = get_services().secrets.get(sid)
    assert old is not None and old.access_token and old.refresh_token
    zoho.expire_access_tokens()
    refreshes, calls = zoho.token_call_count, len(_api_calls(zoho))

    answer = admin.get(f"/proxy/{sid}/org")

    assert answer.status_code == 200, answer.text
    assert zoho.token_call_count == refreshes + 1
    assert [c.organization_id for c in _api_calls(zoho)[calls:]] == [
        None,
        ORGANIZATION,
    ]  # refused, then served
    new = get_services().secrets.get(sid)
    assert new is not None and new.access_token != old.access_token

    # Invalidated again within the minute: Zoho's 401 is passed back, no second refresh.
    zoho.expire_access_tokens()
    again = admin.get(f"/proxy/{sid}/org")
    assert again.status_code == 401
    assert again.json()["code"] == "INVALID_OAUTHTOKEN"
    assert zoho.token_call_count == refreshes + 1
    assert_never_shown(
        [answer.text, again.text, str(answer.headers), str(again.headers)],
        {
            "old access token": old.access_token,
            "new access token": new.access_token or "",
            "refresh token": old.refresh_token,
        },
        capfd=capfd,
        caplog=caplog,
    )


def test_the_retry_after_a_refused_token_waits_for_the_next_turn_and_is_served(
    gateway: LocalApiGateway,
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    held_clock: VirtualClock,
) -> None:
    # Given a subscription allowed 30 calls a minute (a turn every 2 s), on a clock the test holds
    throttling = {"requests_per_minute": 30, "max_concurrent_requests": 2}
    sid = connected(admin, browser, throttling=throttling)
    age_connection(get_services(), sid, seconds=120)
    zoho.expire_access_tokens()
    began = held_clock.now

    # When a call's token is refused by Zoho, and renewed at once
    answer = admin.get(f"/proxy/{sid}/org")

    # Then the same call is retried at the next turn, not refused for coming before it, and served
    assert answer.status_code == 200, answer.text
    assert 60.25 / 30 <= held_clock.now - began < 2.5


def test_a_refused_token_already_replaced_by_another_refresh_is_retried_with_that_one(
    gateway: LocalApiGateway, admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    # Given a proxy instance holding a token Zoho no longer takes, and an operator's refresh since
    sid = connected(admin, browser)
    assert admin.get(f"/proxy/{sid}/org").status_code == 200  # the token is now cached in the instance
    zoho.expire_access_tokens()
    assert admin.post(f"/admin/subscriptions/{sid}/refresh").status_code == 200
    refreshes = zoho.token_call_count

    # When a sync job calls through the proxy
    answer = admin.get(f"/proxy/{sid}/org")

    # Then the call is retried with the stored new token, and no other refresh is made
    assert answer.status_code == 200, answer.text
    assert zoho.token_call_count == refreshes


def _holding_a_token_zoho_refuses(admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn) -> str:
    """A subscription connected over a minute ago whose token the proxy instance caches and Zoho has
    since invalidated; its id."""
    sid = connected(admin, browser)
    assert admin.get(f"/proxy/{sid}/org").status_code == 200  # the token is now cached in the instance
    age_connection(get_services(), sid, seconds=120)
    zoho.expire_access_tokens()
    return sid


def test_a_refused_token_whose_refresh_fails_passes_zohos_401_back_and_says_why_in_the_log(
    gateway: LocalApiGateway,
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a proxy instance holding a token Zoho no longer takes, and Zoho's token endpoint down
    sid = _holding_a_token_zoho_refuses(admin, browser, zoho)
    zoho.inject_fault("unavailable")

    # When a sync job calls through the proxy
    answer = admin.get(f"/proxy/{sid}/org")

    # Then Zoho's 401 is passed back, the operator's log says the refresh failed, and it stays connected
    assert (answer.status_code, answer.json()["code"]) == (401, "INVALID_OAUTHTOKEN")
    line = logged_once(caplog, "token refused by Zoho and the refresh failed")
    assert (line["subscription_id"], line["result"]) == (sid, "failed")
    assert admin.get(f"/admin/subscriptions/{sid}").json()["status"] == "connected"


def test_a_refused_token_while_another_refresh_holds_the_lease_passes_zohos_401_back(
    gateway: LocalApiGateway,
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a token Zoho no longer takes, and a refresh elsewhere holding the lease past the proxy's wait
    sid = _holding_a_token_zoho_refuses(admin, browser, zoho)
    monkeypatch.setattr(token_recovery, "LEASE_WAIT_SECONDS", 0.3)
    refreshes = zoho.token_call_count
    with lease.held(get_services(), sid, purpose="refresh"):
        # When a sync job calls through the proxy
        answer = admin.get(f"/proxy/{sid}/org")

    # Then Zoho's 401 is passed back (that refresh has stored no other token yet) and none is made here
    assert (answer.status_code, answer.json()["code"]) == (401, "INVALID_OAUTHTOKEN")
    assert zoho.token_call_count == refreshes


def test_a_call_zoho_does_not_answer_in_time_says_it_may_have_been_carried_out(
    gateway: LocalApiGateway,
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given Zoho's API answering later than the proxy waits
    caplog.set_level(logging.INFO)
    sid = connected(admin, browser)
    monkeypatch.setattr(get_services().zoho_api, "timeout", httpx.Timeout(0.3))
    zoho.api.set_latency(1.0)

    answer = admin.post(f"/proxy/{sid}/Leads", json={"data": [{"Last_Name": "Late"}]})

    # Then the sync job is told to check before sending again, and the operator's log says why
    assert (answer.status_code, answer.headers["x-broker-error"]) == (503, "zoho_error")
    assert answer.json()["message"] == (
        "Zoho did not answer in time; the call may or may not have been carried out: check, then try again."
    )
    line = logged_once(caplog, "proxy call refused")
    assert (line["error"], line["zoho_code"]) == ("zoho_error", "timeout")
    zoho.api.set_latency(0)
    assert admin.get(f"/proxy/{sid}/org").status_code == 200  # its slot was released


def test_a_call_zoho_cannot_be_reached_for_says_nothing_was_sent(
    gateway: LocalApiGateway,
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given Zoho's servers gone from the network (connections refused)
    caplog.set_level(logging.INFO)
    sid = connected(admin, browser)
    zoho.stop()

    answer = admin.post(f"/proxy/{sid}/Leads", json={"data": [{"Last_Name": "Unsent"}]})

    # Then the sync job is told that nothing was sent, so sending again is safe
    assert (answer.status_code, answer.headers["x-broker-error"]) == (503, "zoho_error")
    assert answer.json()["message"] == "Zoho could not be reached; nothing was sent: try again shortly."
    line = logged_once(caplog, "proxy call refused")
    assert (line["error"], line["zoho_code"]) == ("zoho_error", "unreachable")


def test_zohos_too_many_requests_is_passed_back_and_slows_the_subscription_down(
    gateway: LocalApiGateway, admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    sid = connected(admin, browser)
    zoho.api.set_concurrency_limit(0)  # every call is one too many
    answer = admin.get(f"/proxy/{sid}/org")
    assert answer.status_code == 429
    assert answer.json()["code"] == "TOO_MANY_REQUESTS"
    assert answer.headers["retry-after"] == "5"
    assert "x-broker-error" not in answer.headers  # Zoho's own answer
    calls = len(_api_calls(zoho))
    zoho.api.set_concurrency_limit(10)

    held_back = admin.get(f"/proxy/{sid}/org")

    assert held_back.status_code == 429
    assert held_back.headers["x-broker-error"] == "throttled"
    assert 1 <= int(held_back.headers["retry-after"]) <= 5
    assert len(_api_calls(zoho)) == calls  # held back before Zoho


def test_over_the_subscriptions_rate_the_broker_answers_429_with_retry_after_or_waits(
    gateway: LocalApiGateway,
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    held_clock: VirtualClock,
) -> None:
    # On a clock the test holds: however slow the machine, the second call comes before its turn
    sid = connected(admin, browser, throttling={"requests_per_minute": 30, "max_concurrent_requests": 2})
    assert admin.get(f"/proxy/{sid}/org").status_code == 200
    calls = len(_api_calls(zoho))
    held_clock.sleep(0.5)  # the next call comes half a second later; its turn is 2.008 s after the first's
    refused = admin.get(f"/proxy/{sid}/org")
    assert refused.status_code == 429
    assert refused.json()["error"] == "throttled"
    assert refused.headers["retry-after"] == "2"
    assert len(_api_calls(zoho)) == calls
    started = held_clock.now
    waited = admin.get(f"/proxy/{sid}/org", headers={"X-Broker-Max-Wait": "3"})
    assert waited.status_code == 200
    assert held_clock.now - started == pytest.approx(60.25 / 30 - 0.5)  # it waited for its turn, no longer


def test_calls_for_a_subscription_that_is_not_connected_or_unknown_are_refused(
    gateway: LocalApiGateway, admin: httpx.Client
) -> None:
    sid = create_subscription(admin)["subscription_id"]
    assert admin.get(f"/proxy/{sid}/org").json()["error"] == "not_connected"
    unknown = admin.get("/proxy/sub_nope/org")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")
    assert admin.get(f"/proxy/{sid}/org", headers={"X-Broker-Max-Wait": "60"}).status_code == 400


def test_binary_bodies_pass_through_byte_for_byte(
    gateway: LocalApiGateway, admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    zoho.api = FilesApi(zoho.api)  # type: ignore[assignment]
    sid = connected(admin, browser)
    blob = bytes(range(256)) * 64 + b"\xff\xfe\x00\x80"  # not UTF-8
    uploaded = admin.post(
        f"/proxy/{sid}/files", content=blob, headers={"Content-Type": "application/octet-stream"}
    )
    assert uploaded.status_code == 200, uploaded.text
    file_id = uploaded.json()["data"][0]["details"]["id"]
    downloaded = admin.get(f"/proxy/{sid}/files", params={"id": file_id})
    assert downloaded.status_code == 200
    assert downloaded.content == blob
    assert downloaded.headers["x-file-size"] == str(len(blob))


def test_bodies_beyond_what_lambda_carries_get_413_and_answers_502(
    gateway: LocalApiGateway, admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    files = FilesApi(zoho.api)
    zoho.api = files  # type: ignore[assignment]
    sid = connected(admin, browser)
    calls = len(zoho.api.requests)
    too_big = admin.post(f"/proxy/{sid}/files", content=b"x" * (4 * 1024 * 1024 + 1))
    assert (too_big.status_code, too_big.json()["error"]) == (413, "payload_too_large")
    assert too_big.json()["message"].startswith("The request body is larger than 4 MiB, the most")
    assert len(zoho.api.requests) == calls
    files._files["large"] = b"y" * (4 * 1024 * 1024 + 1)  # as if uploaded elsewhere
    answer = admin.get(f"/proxy/{sid}/files", params={"id": "large"})
    assert answer.status_code == 502
    assert answer.headers["x-broker-error"] == "answer_too_large"
    assert answer.json()["message"].startswith(
        "Zoho's answer is larger than 4 MiB, more than Lambda can return"
    )
    assert "per_page" in answer.json()["message"]

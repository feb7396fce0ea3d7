"""The sync jobs' client and `broker call`, against the proxy over real HTTP (local gateway, stand-in)."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from broker_cli.main import main
from broker_client import BrokerCallError, ProxyClient
from broker_local.gateway import LocalApiGateway
from broker_local.zoho_standin import ZohoStandIn
from tests.aws_env import use_credentials
from tests.clocks import VirtualClock
from tests.integration.flow import create_subscription
from tests.integration.proxying import ORGANIZATION, connected


def test_the_client_pages_creates_updates_and_deletes_records(
    gateway: LocalApiGateway, admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    sid = connected(admin, browser)
    zoho.api.add_records(ORGANIZATION, "Contacts", 5)
    with ProxyClient(gateway.base_url, sid) as client:
        names = [record["Last_Name"] for record in client.pages("Contacts", per_page=2)]
        created = client.post("Contacts", json={"data": [{"Last_Name": "Okafor"}]})
        record_id = created.json()["data"][0]["details"]["id"]
        client.put(f"Contacts/{record_id}", json={"data": [{"Last_Name": "Okafor-Lee"}]})
        after_update = zoho.api.records(ORGANIZATION, "Contacts")[record_id]["Last_Name"]
        client.delete("Contacts", params={"ids": record_id})
    assert names == [f"Record {n}" for n in range(5)]
    reads = [call for call in zoho.api.requests if call.path == "/crm/v8/Contacts" and call.method == "GET"]
    pages = [(call.params["page"], call.params["per_page"]) for call in reads]
    assert pages == [("1", "2"), ("2", "2"), ("3", "2")]
    assert created.status_code == 201
    assert after_update == "Okafor-Lee"
    assert record_id not in zoho.api.records(ORGANIZATION, "Contacts")


def test_the_client_retries_a_429_after_retry_after(
    gateway: LocalApiGateway,
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    held_clock: VirtualClock,
) -> None:
    # Time is a clock the test holds, for the broker and the client's waits alike: however slow the
    # machine, the second call comes before its turn.
    sid = connected(admin, browser, throttling={"requests_per_minute": 60, "max_concurrent_requests": 2})
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        held_clock.sleep(seconds)

    with ProxyClient(gateway.base_url, sid, max_wait_seconds=0, retries=2, sleep=sleep) as client:
        first, second = client.get("org"), client.get("org")
    assert (first.status_code, second.status_code) == (200, 200)
    # The broker's Retry-After: the second call's turn is 1.004 s away (one start a second, and a grace),
    # said in whole seconds rounded up
    assert slept == [2.0]


def test_the_client_raises_the_brokers_own_refusals(
    gateway: LocalApiGateway, admin: httpx.Client, browser: httpx.Client
) -> None:
    sid = create_subscription(admin)["subscription_id"]
    with ProxyClient(gateway.base_url, sid) as client, pytest.raises(BrokerCallError) as refused:
        client.get("org")
    assert (refused.value.status, refused.value.code) == (409, "not_connected")


def test_the_clients_token_is_cached_until_five_minutes_before_it_expires(
    gateway: LocalApiGateway, admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    sid = connected(admin, browser)
    asked: list[str] = []
    http = httpx.Client(
        base_url=gateway.base_url, event_hooks={"request": [lambda request: asked.append(request.url.path)]}
    )
    with ProxyClient(gateway.base_url, sid, http=http) as client:
        token, again = client.token(), client.token()
    http.close()
    assert token == again
    assert asked == [f"/admin/subscriptions/{sid}/token"]
    answer = httpx.get(
        f"{zoho.accounts_servers['eu']}/crm/v8/org", headers={"Authorization": f"Zoho-oauthtoken {token}"}
    )
    assert answer.status_code == 200


def test_a_signed_request_carries_a_valid_sigv4_signature_over_its_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_credentials(monkeypatch, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    sent: list[httpx.Request] = []

    def api_gateway(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(201, json={"data": []})

    url = "https://abc123.execute-api.eu-west-1.amazonaws.com"
    with ProxyClient(url, "sub_1", http=None) as client:
        client._http._transport = httpx.MockTransport(api_gateway)
        client.post("Leads", json={"data": [{"Last_Name": "Ng"}]})
    request = sent[0]
    assert request.url.path == "/proxy/sub_1/Leads"
    assert _expected_signature(request, request.content) == _signature(request)
    assert _expected_signature(request, request.content + b" ") != _signature(request)


def _signature(request: httpx.Request) -> str:
    return request.headers["authorization"].rpartition("Signature=")[2]


def _expected_signature(request: httpx.Request, body: bytes) -> str:
    """What API Gateway computes from the request as received (botocore's SigV4 primitives)."""
    signer = SigV4Auth(
        Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), "execute-api", "eu-west-1"
    )
    received = AWSRequest(
        method=request.method,
        url=str(request.url),
        headers={
            "content-type": request.headers["content-type"],
            "host": request.url.host,
            "x-amz-date": request.headers["x-amz-date"],
        },
        data=body,
    )
    received.context["timestamp"] = request.headers["x-amz-date"]
    received.context["payload_signing_enabled"] = True
    assert signer.payload(received) == hashlib.sha256(body).hexdigest()
    return signer.signature(signer.string_to_sign(received, signer.canonical_request(received)), received)


def test_broker_call_prints_zohos_answer_and_exits_by_its_status(
    gateway: LocalApiGateway,
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sid = connected(admin, browser)
    base = ["--url", gateway.base_url, "call", sid]

    created = main([*base, "POST", "Leads", "--data", '{"data": [{"Last_Name": "Ng"}]}'])
    created_out = capsys.readouterr().out
    listed = main([*base, "get", "Leads", "-p", "per_page=1"])
    listed_out = capsys.readouterr().out
    missing = main([*base, "GET", "NoSuchModule"])
    missing_err = capsys.readouterr().err
    escaped = main([*base, "GET", "../oauth/v2/token"])
    escaped_err = capsys.readouterr().err
    encoded = main([*base, "GET", "Leads%2F..%2Forg"])
    encoded_err = capsys.readouterr().err

    assert created == 0 and '"code": "SUCCESS"' in created_out
    assert listed == 0 and '"Last_Name": "Ng"' in listed_out
    assert missing == 1 and "HTTP 400 from Zoho" in missing_err
    assert escaped == 2 and ". or .. segments" in escaped_err
    assert encoded == 1 and "the broker refused the call" in encoded_err and "invalid_request" in encoded_err

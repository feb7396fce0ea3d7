"""The stand-in's controls over real HTTP: injected faults and latency, what it records, its command
line, the Self Client page, learnt and revoked clients, its favicon."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx
import pytest
from consent import (
    CLIENT_ID,
    REDIRECT_URI,
    ROOT,
    SCOPE,
    SECRET,
    exchange,
    minted_tokens,
    refresh,
)

from broker_local.zoho_standin import RecordedRequest, ZohoStandIn, api_domain_for
from tests.whoami import whoami

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
def test_an_injected_fault_fails_the_token_endpoint_once(
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


def test_a_fault_for_one_dc_and_a_count_fails_only_those_requests(standin: ZohoStandIn) -> None:
    us, eu = standin.accounts_servers["us"], standin.accounts_servers["eu"]
    standin.inject_fault("unavailable", count=2, data_centre="eu")

    statuses = [httpx.post(f"{base}/oauth/v2/token").status_code for base in (us, eu, eu, eu)]

    assert statuses == [200, 503, 503, 200]
    standin.inject_fault("server_error", count=3)
    standin.clear_faults()
    assert httpx.post(f"{us}/oauth/v2/token").status_code == 200
    with pytest.raises(ValueError, match="unknown fault"):
        standin.inject_fault("meltdown")


def test_a_timeout_fault_times_the_client_out_and_stop_stays_prompt() -> None:
    standin = ZohoStandIn({"us": 0}).start()
    try:
        standin.inject_fault("timeout")
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{standin.accounts_servers['us']}/oauth/v2/token", timeout=0.3)
    finally:
        started = time.monotonic()
        standin.stop()
    assert time.monotonic() - started < 2


def test_latency_delays_the_token_endpoints_answer(
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


def test_requests_are_recorded_in_order_with_merged_params(
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


def test_serverinfo_lists_every_dc_as_zoho_does(standin: ZohoStandIn) -> None:
    answer = httpx.get(f"{standin.accounts_servers['eu']}/oauth/serverinfo")

    assert answer.json() == {"result": "success", "locations": standin.accounts_servers}


def test_an_unknown_path_or_a_bad_token_gets_a_json_error(standin: ZohoStandIn) -> None:
    base = standin.accounts_servers["us"]

    missing = httpx.get(f"{base}/oauth/v3/nothing")

    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert httpx.get(f"{base}/standin/whoami").status_code == 401
    assert whoami(base, "1000.nope").json() == {"code": "INVALID_TOKEN"}


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
def test_each_data_centres_api_domain_is_zohos(data_centre: str, domain: str) -> None:
    assert api_domain_for(data_centre) == domain


def test_the_command_line_serves_and_prints_the_accounts_servers() -> None:
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


def test_a_learning_stand_in_remembers_a_clients_secret() -> None:
    """The local runner's stand-in: the first secret used at a data centre is the client's from then on."""
    # Given a learning stand-in, when a client used one secret, then another is invalid_client.
    with ZohoStandIn({"us": 0, "eu": 0}, learn_client_secrets=True) as standin:
        us, eu = standin.accounts_servers["us"], standin.accounts_servers["eu"]
        tokens = minted_tokens(standin, "us")  # exchanged with SECRET

        assert refresh(us, tokens["refresh_token"], client_secret="wrong") == {"error": "invalid_client"}
        assert "access_token" in refresh(us, tokens["refresh_token"])
        code = standin.issue_code(
            client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, scope=SCOPE, data_centre="us"
        )
        assert exchange(us, code, client_secret="wrong") == {"error": "invalid_client"}
        # A secret per data centre is allowed, as in the API Console's Multi-DC settings.
        code = standin.issue_code(
            client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, scope=SCOPE, data_centre="eu"
        )
        assert "access_token" in exchange(eu, code, client_secret="the-eu-secret")


def test_a_client_revoked_by_the_person_cannot_refresh(standin: ZohoStandIn) -> None:
    tokens = minted_tokens(standin)
    other = standin.issue_code(
        client_id="1000.SOMEONEELSE", redirect_uri=REDIRECT_URI, scope=SCOPE, data_centre="us"
    )
    base = standin.accounts_servers["us"]
    kept = exchange(base, other, client_id="1000.SOMEONEELSE")

    assert standin.revoke_client(CLIENT_ID) == 1

    assert refresh(base, tokens["refresh_token"]) == {"error": "invalid_code"}
    assert whoami(base, tokens["access_token"]).status_code == 401
    assert "access_token" in refresh(base, kept["refresh_token"], client_id="1000.SOMEONEELSE")


def test_the_favicon_is_a_png(standin: ZohoStandIn) -> None:
    answer = httpx.get(standin.accounts_servers["eu"] + "/favicon.ico")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
    assert answer.content.startswith(b"\x89PNG\r\n\x1a\n")

"""broker_local.console against a stand-in admin API, and the gateway's {param} extra routes it uses."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker_local.console import AUTHENTICATE_PATH, Console
from broker_local.gateway import LocalApiGateway
from zoho_broker import pages

BASE_URL = "http://127.0.0.1:3000"
CONNECTED: dict[str, Any] = {
    "subscription_id": "sub_1",
    "name": "Acme <script>alert(1)</script>",
    "integration": "zoho-crm",
    "version": "1",
    "status": "connected",
    "data_centre": "eu",
    "access_token_expires_at": "2999-01-01T00:00:00Z",
    "last_error": None,
    "tokens": {"access_token": "1000…(70 chars)", "refresh_token": "1000…(70 chars)"},
}
REAUTH: dict[str, Any] = {
    "subscription_id": "sub_2",
    "name": "Beta",
    "integration": "zoho-commerce",
    "version": "1",
    "status": "needs_reauthentication",
    "data_centre": "us",
    "access_token_expires_at": "2000-01-01T00:00:00Z",
    "last_error": "invalid_code <b>",
    "tokens": {"access_token": None, "refresh_token": None},
}


class AdminApi:
    """Answers like the admin API; records what the console asked."""

    def __init__(self, subscriptions: list[dict[str, Any]], *, fail: int | None = None) -> None:
        self.subscriptions = {item["subscription_id"]: item for item in subscriptions}
        self.fail = fail
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.seen.append(f"{request.method} {path}")
        if self.fail is not None:
            return httpx.Response(self.fail, json={"error": "internal_error", "message": "It broke."})
        if path == "/admin/integrations":
            names = [{"id": "zoho-crm", "name": "Zoho CRM"}, {"id": "zoho-commerce", "name": "Zoho Commerce"}]
            return httpx.Response(200, json={"integrations": names})
        if path == "/admin/subscriptions":
            listed = [{**item, "tokens": None} for item in self.subscriptions.values()]
            return httpx.Response(200, json={"subscriptions": listed, "next_cursor": None})
        found = re.fullmatch(r"/admin/subscriptions/([^/]+)(/connect-links)?", path)
        if found is None or found.group(1) not in self.subscriptions:
            return httpx.Response(404, json={"error": "not_found", "message": "No such subscription."})
        if found.group(2):
            return httpx.Response(201, json={"url": f"{BASE_URL}/connect/LINK", "subscription_id": "x"})
        return httpx.Response(200, json=self.subscriptions[found.group(1)])


def _console(api: AdminApi) -> Console:
    servers = {"us": "http://127.0.0.1:9001", "eu": "http://127.0.0.1:9002/"}
    return Console(BASE_URL, servers, transport=httpx.MockTransport(api))


def _post(subscription_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "rawPath": AUTHENTICATE_PATH.format(subscription_id=subscription_id),
        "headers": {"host": "127.0.0.1:3000", **(headers or {})},
        "pathParameters": {"subscription_id": subscription_id},
    }


def test_the_list_shows_status_data_centre_and_masked_tokens() -> None:
    api = AdminApi([CONNECTED, REAUTH])

    answer = _console(api).index({"rawPath": "/", "headers": {}})

    assert answer["statusCode"] == 200
    html = answer["body"]
    assert "<script>" not in html
    assert "Acme &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<span class="status-text">connected</span>' in html
    assert '<span class="status-text">needs re-authentication</span>' in html
    assert "<dt>Data centre</dt><dd>EU</dd>" in html
    assert "<code>1000…(70 chars)</code>" in html
    assert "Zoho refused (invalid_code &lt;b&gt;)." in html  # an unknown code, named and escaped
    # Needing re-authentication, the old token's expiry is not shown: only the connected card has one.
    assert html.count("<dt>Access token expires</dt>") == 1
    assert "(expired)" not in html
    assert 'action="/console/subscriptions/sub_1/authenticate"' in html
    assert html.count(">Reconnect</button>") == 2
    assert "<dt>Subscription id</dt><dd><code>sub_1</code></dd>" in html
    assert 'href="/">Subscriptions</a>' in html and 'href="/console/integrations"' in html
    # Lists leave the tokens out, so the console reads each subscription once.
    assert "GET /admin/subscriptions/sub_1" in api.seen
    assert "GET /admin/subscriptions/sub_2" in api.seen


def test_the_csp_allows_only_its_stylesheet_and_forms_to_zoho() -> None:
    answer = _console(AdminApi([])).index({"rawPath": "/", "headers": {}})

    headers = answer["headers"]
    policy = headers["Content-Security-Policy"]
    style = re.search(r"<style>(.*)</style>", answer["body"], re.S)
    assert style is not None
    assert f"style-src {pages.style_source(style.group(1))};" in policy
    assert "default-src 'none'" in policy
    assert "script-src" not in policy
    # Browsers check form-action on each redirect of the submission: console, broker, then Zoho.
    assert "form-action 'self' http://127.0.0.1:9001 http://127.0.0.1:9002;" in policy
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "No subscriptions yet" in answer["body"]


def test_a_failing_admin_api_is_reported_without_details() -> None:
    answer = _console(AdminApi([CONNECTED], fail=500)).index({"rawPath": "/", "headers": {}})

    assert answer["statusCode"] == 502
    assert "The admin API answered 500. It broke." in answer["body"]
    assert "Traceback" not in answer["body"]


def test_authenticating_redirects_to_a_fresh_connect_link() -> None:
    api = AdminApi([CONNECTED])

    answer = _console(api).authenticate(_post("sub_1", {"sec-fetch-site": "same-origin", "origin": "null"}))

    assert answer["statusCode"] == 307
    assert answer["headers"]["Location"] == f"{BASE_URL}/connect/LINK"
    assert api.seen == ["POST /admin/subscriptions/sub_1/connect-links"]


@pytest.mark.parametrize(
    ("subscription_id", "headers", "status"),
    [
        ("sub_1", {"sec-fetch-site": "cross-site"}, 403),
        ("sub_1", {"sec-fetch-site": "same-site"}, 403),
        ("sub_1", {"origin": "https://evil.test"}, 403),
        ("sub_9", {"sec-fetch-site": "same-origin"}, 404),
        ("../x", {}, 404),
    ],
)
def test_a_forged_or_unknown_authentication_makes_no_link(
    subscription_id: str, headers: dict[str, str], status: int
) -> None:
    api = AdminApi([CONNECTED])

    answer = _console(api).authenticate(_post(subscription_id, headers))

    assert answer["statusCode"] == status
    assert "Location" not in answer["headers"]
    assert not any(seen.endswith("/connect-links") and "sub_1" in seen for seen in api.seen)


# --------------------------------------------------------------------------------------------------
# The gateway's extra routes with {param} segments.


def _echo(event: dict[str, Any]) -> dict[str, Any]:
    document = {"routeKey": event["routeKey"], "pathParameters": event.get("pathParameters")}
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(document)}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    extra = {
        ("GET", "/"): _echo,
        ("POST", "/things/{thing_id}/poke"): _echo,
        ("POST", "/things/special/poke"): _echo,
    }
    project = Path(tmp_path_factory.mktemp("empty"))
    with (
        LocalApiGateway([], project, port=0, extra_routes=extra) as gateway,
        httpx.Client(base_url=gateway.base_url, timeout=10) as http,
    ):
        yield http


def test_a_pattern_route_receives_its_path_parameters(client: httpx.Client) -> None:
    answer = client.post("/things/a%20b/poke")

    assert answer.status_code == 200
    assert answer.json() == {
        "routeKey": "POST /things/{thing_id}/poke",
        "pathParameters": {"thing_id": "a b"},
    }


def test_an_exact_route_wins_over_a_pattern(
    client: httpx.Client,
) -> None:
    assert client.post("/things/special/poke").json()["routeKey"] == "POST /things/special/poke"
    assert client.get("/").json() == {"routeKey": "GET /", "pathParameters": None}


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/things/a/poke"), ("POST", "/things//poke"), ("POST", "/things/a/b/poke")]
)
def test_a_pattern_route_of_another_method_or_shape_is_404(
    client: httpx.Client, method: str, path: str
) -> None:
    assert client.request(method, path).status_code == 404


def test_the_list_shows_a_bound_organization_escaped() -> None:
    bound = {**CONNECTED, "organization": {"id": "4000000001", "name": "Acme <Ltd>", "verified_at": None}}
    unverified = {**REAUTH, "organization": None, "organization_check_error": "verification failed: http_503"}

    html = _console(AdminApi([bound, unverified])).index({"rawPath": "/", "headers": {}})["body"]

    assert "<dt>Organization</dt><dd>Acme &lt;Ltd&gt;</dd>" in html
    assert "<dt>Organization</dt><dd>verification failed: http_503</dd>" in html

"""How the Zoho client reads Zoho's answers to a revocation and an API call, and what the broker then
records in `last_error`: Zoho's own error codes, cut to a readable length, and whether trying later helps.

Zoho's answers are played by an httpx transport, as in tests/integration/test_edges.py: these are the
shapes of answer (a bare 500 page, an over-long error code) that the stand-in has no reason to give.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from broker_local.zoho_standin import ZohoStandIn
from zoho_broker.errors import ZohoError
from zoho_broker.zoho_client import ZohoClient

REVOKE_URL = "https://accounts.zoho.eu/oauth/v2/token/revoke"
TOKEN_URL = "https://accounts.zoho.eu/oauth/v2/token"
ORG_URL = "https://www.zohoapis.eu/crm/v8/org"


def client_answering(
    answer: Callable[[httpx.Request], httpx.Response], seen: list[httpx.Request] | None = None
) -> ZohoClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return answer(request)

    return ZohoClient(transport=httpx.MockTransport(handle))


def zoho_error(call: Callable[[], Any]) -> ZohoError:
    with pytest.raises(ZohoError) as raised:
        call()
    return raised.value


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"status": "success"}),
        httpx.Response(200, json={}),
        httpx.Response(200, text="revoked"),  # not JSON, yet a success
        httpx.Response(200, json=["revoked"]),  # JSON, but no object to read an error from
    ],
    ids=["status", "empty-json", "plain-text", "json-list"],
)
def test_a_revocation_zoho_accepts_raises_nothing(answer: httpx.Response) -> None:
    seen: list[httpx.Request] = []
    client_answering(lambda _: answer, seen).revoke(revoke_url=REVOKE_URL, refresh_token="1000.r")
    # The token travels as Zoho wants it, a query parameter
    assert [(r.method, r.url.params["token"]) for r in seen] == [("POST", "1000.r")]


def test_a_revocation_zoho_refuses_is_definitive_and_named() -> None:
    client = client_answering(lambda _: httpx.Response(400, json={"error": "invalid_token"}))
    error = zoho_error(lambda: client.revoke(revoke_url=REVOKE_URL, refresh_token="1000.r"))
    assert (str(error), error.zoho_code, error.transient) == (
        "Zoho refused the request (invalid_token).",
        "invalid_token",
        False,
    )


def test_a_revocation_answered_with_an_unexplained_status_is_worth_retrying() -> None:
    client = client_answering(lambda _: httpx.Response(404, text="<html>Not found</html>"))
    error = zoho_error(lambda: client.revoke(revoke_url=REVOKE_URL, refresh_token="1000.r"))
    assert (str(error), error.zoho_code, error.transient) == (
        "Zoho answered HTTP 404 to the revocation.",
        "http_404",
        True,
    )


def test_zohos_error_code_is_kept_to_64_characters() -> None:
    long_code = "e" * 100
    client = client_answering(lambda _: httpx.Response(400, json={"error": long_code}))
    error = zoho_error(
        lambda: client.refresh(token_url=TOKEN_URL, client_id="c", client_secret="s", refresh_token="r")
    )
    assert error.zoho_code == "e" * 64
    assert str(error) == f"Zoho refused the request ({'e' * 64})."


def test_zohos_rate_limit_answer_reads_as_slow_down() -> None:
    body = {"error_description": "You have made too many requests continuously.", "error": "Access Denied"}
    client = client_answering(lambda _: httpx.Response(400, json=body))
    error = zoho_error(
        lambda: client.refresh(token_url=TOKEN_URL, client_id="c", client_secret="s", refresh_token="r")
    )
    assert (str(error), error.zoho_code, error.transient) == (
        "Zoho asks us to slow down (too many requests).",
        "rate_limited",
        True,
    )


def test_an_api_call_sends_the_token_in_the_header_its_parameters_and_its_own_timeout() -> None:
    seen: list[httpx.Request] = []
    client = client_answering(lambda _: httpx.Response(200, json={"org": [{"id": "1"}]}), seen)

    body = client.api_get(
        ORG_URL,
        access_token="1000.access",
        headers={"X-com-zoho-store-organizationid": "42"},
        params={"page": "2"},
        timeout_seconds=5.0,
    )

    assert body == {"org": [{"id": "1"}]}
    (request,) = seen
    assert str(request.url) == f"{ORG_URL}?page=2"
    assert request.headers["Authorization"] == "Zoho-oauthtoken 1000.access"
    assert request.headers["X-com-zoho-store-organizationid"] == "42"
    # The caller's budget bounds the whole call; connecting never waits more than 3 s of it
    assert request.extensions["timeout"] == {"connect": 3.0, "read": 5.0, "write": 5.0, "pool": 5.0}


def test_a_token_request_connects_within_three_seconds_and_waits_ten_for_zohos_answer() -> None:
    seen: list[httpx.Request] = []
    client = client_answering(lambda _: httpx.Response(200, json={"status": "success"}), seen)

    client.revoke(revoke_url=REVOKE_URL, refresh_token="1000.r")

    # An accounts server that cannot be reached is given up early; one that is slow to answer is not
    assert seen[0].extensions["timeout"] == {"connect": 3.0, "read": 10.0, "write": 10.0, "pool": 10.0}


def test_a_token_endpoint_that_redirects_is_not_followed_so_the_secret_goes_nowhere_else() -> None:
    seen: list[httpx.Request] = []

    def redirect_elsewhere(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            return httpx.Response(307, headers={"Location": "https://collector.example/token"})
        return httpx.Response(200, json={"access_token": "1000.a", "expires_in": 3600})

    client = client_answering(redirect_elsewhere, seen)
    error = zoho_error(
        lambda: client.refresh(token_url=TOKEN_URL, client_id="1000.X", client_secret="s", refresh_token="r")
    )

    assert [str(request.url) for request in seen] == [TOKEN_URL]
    assert error.transient is True  # an answer the broker cannot use: tried again later


def test_an_api_call_under_three_seconds_connects_within_its_budget() -> None:
    seen: list[httpx.Request] = []
    client = client_answering(lambda _: httpx.Response(200, json={}), seen)
    client.api_get(ORG_URL, access_token="a", headers={}, params={}, timeout_seconds=2.0)
    assert seen[0].extensions["timeout"] == {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}


def test_an_api_call_zoho_does_not_answer_in_time_is_worth_retrying() -> None:
    def too_slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client = client_answering(too_slow)
    error = zoho_error(
        lambda: client.api_get(ORG_URL, access_token="a", headers={}, params={}, timeout_seconds=1.0)
    )
    assert (str(error), error.zoho_code, error.transient) == (
        "Zoho's API did not answer in time.",
        "timeout",
        True,
    )


def test_an_accounts_server_that_cannot_be_reached_is_worth_retrying_and_said_so() -> None:
    # The sentence is what the person on the callback page reads, above "Nothing was changed."
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = client_answering(refused)
    error = zoho_error(
        lambda: client.exchange_code(
            token_url=TOKEN_URL, client_id="1000.X", client_secret="s", code="c", redirect_uri="r"
        )
    )
    assert (str(error), error.zoho_code, error.transient) == (
        "Zoho could not be reached.",
        "unreachable",
        True,
    )


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (
            httpx.Response(200, text="<html>Service Unavailable</html>"),
            "Zoho answered something that is not JSON.",
        ),
        (httpx.Response(200, json=["access_token"]), "Zoho answered an unexpected document."),
        (
            httpx.Response(200, json={"access_token": "", "expires_in": 3600}),
            "Zoho's token answer was incomplete.",
        ),
        (
            httpx.Response(200, json={"access_token": "1000.a", "expires_in": 0}),
            "Zoho's token answer was incomplete.",
        ),
    ],
    ids=["not-json", "a-list", "empty-token", "no-lifetime"],
)
def test_a_token_answer_the_broker_cannot_use_is_worth_retrying_and_said_so(
    answer: httpx.Response, said: str
) -> None:
    # Nothing is stored from it; the refresher backs off and tries again, and last_error reads it
    client = client_answering(lambda _: answer)
    error = zoho_error(
        lambda: client.refresh(
            token_url=TOKEN_URL, client_id="1000.X", client_secret="s", refresh_token="1000.r"
        )
    )
    assert (str(error), error.zoho_code, error.transient) == (said, "bad_response", True)


def test_a_plain_http_accounts_server_is_reached_without_loading_any_certificate(
    zoho: ZohoStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local stand-in speaks plain http: the client makes no TLS context for it (loading the trusted
    certificates takes tens of milliseconds, paid on a cold start only when Zoho is reached over https)."""

    def no_certificates(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        raise AssertionError("a verifying TLS context was made for a plain-http server")

    monkeypatch.setattr(ssl, "create_default_context", no_certificates)
    client = ZohoClient()  # its own transports, made on the first request of each scheme

    client.revoke(revoke_url=zoho.accounts_servers["us"] + "/oauth/v2/token/revoke", refresh_token="1000.x")

    assert [request.path for request in zoho.requests] == ["/oauth/v2/token/revoke"]

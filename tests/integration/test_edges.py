"""The edges an attacker, a careless client and a flaky cloud reach: stray connect links, bad bodies,
odd callback parameters, headers, and what is logged when a secret is broken."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
from flow import (
    CLIENT_SECRET,
    connect,
    connect_link,
    create_subscription,
    decide_at_zoho,
    logged_once,
    open_link,
    page_title,
)
from stored import Announcements, stored_secret

from broker_local.zoho_standin import ZohoStandIn
from tests.clocks import Jitter, VirtualClock
from zoho_broker import page_routes, state, web
from zoho_broker.errors import PayloadTooLarge, UnsupportedMediaType, ZohoError
from zoho_broker.logic import schedule
from zoho_broker.services import get_services
from zoho_broker.zoho_client import ZohoClient

# ------------------------------------------------------------------------------------------------
# A stray connect link


def test_an_older_unused_link_cannot_take_over_a_connected_subscription(
    admin: httpx.Client, zoho: ZohoStandIn, gateway: Any
) -> None:
    # Given two links for one subscription, the owner connects through the second
    sid = create_subscription(admin)["subscription_id"]
    stray, used = connect_link(admin, sid), connect_link(admin, sid)
    with httpx.Client(base_url=gateway.base_url) as owner:
        assert _connect_with(owner, used, "eu").status_code == 200
    owner_token = stored_secret(get_services(), sid)["refresh_token"]

    # When someone else opens the first link later, in another browser
    with httpx.Client(base_url=gateway.base_url) as attacker:
        answer = attacker.get(stray)

    # Then the link is dead, and the owner's connection and token are untouched
    assert answer.status_code == 410
    assert "replaced" in answer.text
    view = admin.get(f"/admin/subscriptions/{sid}").json()
    assert (view["status"], view["data_centre"]) == ("connected", "eu")
    assert stored_secret(get_services(), sid)["refresh_token"] == owner_token
    assert owner_token in zoho.live_refresh_tokens("1000.CLIENTID0123456789")


def test_giving_back_a_link_that_is_still_there_changes_nothing(
    admin: httpx.Client, browser: httpx.Client, gateway: Any
) -> None:
    # Given an unused connect link (a consent that failed for a passing reason gives its link back; a
    # second give-back, as when two such failures race, finds it there)
    sid = create_subscription(admin)["subscription_id"]
    link = connect_link(admin, sid)
    link_hash = state.hash_secret_token(urlsplit(link).path.rsplit("/", 1)[-1])
    flows = get_services().flows
    record = flows.get_connect_link(link_hash)
    assert record is not None

    # When it is given back again
    flows.restore_connect_link(link_hash, record)

    # Then nothing fails or changes: the same link, and it still connects
    assert flows.get_connect_link(link_hash) == record
    assert _connect_with(browser, link, "eu").status_code == 200


def test_a_consent_under_way_dies_when_another_connection_completes_first(
    admin: httpx.Client, gateway: Any
) -> None:
    sid = create_subscription(admin)["subscription_id"]
    with httpx.Client(base_url=gateway.base_url) as slow, httpx.Client(base_url=gateway.base_url) as fast:
        started = open_link(slow, connect_link(admin, sid))
        callback = decide_at_zoho(slow, started.headers["location"], data_centre="us")
        assert connect(admin, fast, sid, data_centre="eu").status_code == 200

        late = slow.get(callback)

    assert late.status_code == 400
    assert "replaced" in late.text
    assert admin.get(f"/admin/subscriptions/{sid}").json()["data_centre"] == "eu"


def test_a_reconnection_is_announced_and_shown_with_both_data_centres(
    admin: httpx.Client, browser: httpx.Client, stack: Any
) -> None:
    announcements = Announcements()
    sid = create_subscription(admin)["subscription_id"]
    assert connect(admin, browser, sid, data_centre="us").status_code == 200
    assert admin.get(f"/admin/subscriptions/{sid}").json()["reconnected_at"] is None

    assert connect(admin, browser, sid, data_centre="eu").status_code == 200

    view = admin.get(f"/admin/subscriptions/{sid}").json()
    assert view["reconnected_from"] == "us" and view["data_centre"] == "eu"
    assert view["reconnected_at"] == view["connected_at"]
    events = [e for e in announcements.read() if e["detail-type"] == "SubscriptionReconnected"]
    assert [(e["detail"]["previous_data_centre"], e["detail"]["new_data_centre"]) for e in events] == [
        ("us", "eu")
    ]


def _connect_with(client: httpx.Client, link: str, data_centre: str) -> httpx.Response:
    started = open_link(client, link)
    return client.get(decide_at_zoho(client, started.headers["location"], data_centre=data_centre))


# ------------------------------------------------------------------------------------------------
# Bad bodies: a clear 4xx, nothing stored, nothing echoed

ERRORS = {400: "invalid_request", 413: "payload_too_large", 415: "unsupported_media_type"}
BODY = {"name": "Acme", "integration": "zoho-crm", "client_id": "1000.ABC", "client_secret": CLIENT_SECRET}


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/plain", json.dumps(BODY).encode(), 415),
        ("application/x-www-form-urlencoded", json.dumps(BODY).encode(), 415),  # curl -d
        ("multipart/form-data; boundary=x", b"--x\r\n\r\n" + json.dumps(BODY).encode() + b"\r\n--x--", 415),
        ("application/vnd.api+json", json.dumps(BODY).encode(), 415),
        ("application/json; charset=latin-1", json.dumps(BODY).encode(), 415),
        ("application/json", json.dumps(BODY).encode()[:-1] + b"\xff\xfe}", 400),
        ("application/json", b"[" * 100_000 + b"]" * 100_000, 413),
        ("application/json", b"[" * 30_000 + b"]" * 30_000, 400),
        ("application/json", b'{"throttling": {"requests_per_minute": ' + b"9" * 5000 + b"}}", 400),
        ("application/json", b'{"name": NaN}', 400),
        ("application/json", b'{"a": ' * 20 + b"1" + b"}" * 20, 400),
        ("application/json", b'{"name": "' + b"x" * 70_000 + b'"}', 413),
    ],
    ids=[
        "text",
        "form",
        "multipart",
        "vnd-json",
        "latin1",
        "bad-utf8",
        "deep-and-large",
        "deep",
        "huge-int",
        "nan",
        "nested",
        "large",
    ],
)
def test_a_body_that_is_not_small_utf8_json_is_refused_clearly_and_changes_nothing(
    admin: httpx.Client, content_type: str, body: bytes, status: int
) -> None:
    answer = admin.post("/admin/subscriptions", content=body, headers={"content-type": content_type})

    assert answer.status_code == status
    assert answer.json()["error"] == ERRORS[status]
    assert answer.json()["message"]
    assert CLIENT_SECRET not in answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert admin.get("/admin/subscriptions").json()["subscriptions"] == []


def test_validation_errors_never_quote_what_was_sent(admin: httpx.Client) -> None:
    answer = admin.post(
        "/admin/subscriptions", json={**BODY, "client_id": "bad id " + CLIENT_SECRET, "extra": 1}
    )

    assert answer.status_code == 400
    assert CLIENT_SECRET not in answer.text
    assert {d["field"] for d in answer.json()["details"]} == {"body.client_id", "body.extra"}


def test_the_body_parser_bounds_depth_numbers_and_size() -> None:
    parse = web.parse_json_body
    assert parse('{"a": [1, 2.5, "x"]}', base64_encoded=False, content_type="application/json") == {
        "a": [1, 2.5, "x"]
    }
    assert parse(None, base64_encoded=False, content_type="") is None
    with pytest.raises(UnsupportedMediaType):
        parse("{}", base64_encoded=False, content_type="")
    with pytest.raises(PayloadTooLarge):
        parse('"' + "x" * web.MAX_BODY_BYTES + '"', base64_encoded=False, content_type="application/json")


@pytest.mark.parametrize(
    "accounts_server",
    ["http://[::1", "http://[zz]/", "https://accounts.zoho.eu\uff03.evil.example", "javascript:alert(1)"],
)
def test_an_unparsable_accounts_server_gets_a_clear_page_and_nothing_is_sent(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, accounts_server: str
) -> None:
    sid = create_subscription(admin)["subscription_id"]
    started = open_link(browser, connect_link(admin, sid))
    callback = httpx.URL(decide_at_zoho(browser, started.headers["location"], data_centre="eu"))
    params = dict(callback.params)
    params["accounts-server"] = accounts_server
    params.pop("location")
    token_calls = zoho.token_call_count

    answer = browser.get(str(callback.copy_with(params=params)))

    assert answer.status_code == 400
    assert page_title(answer) == "This sign-in can&#x27;t be completed"
    assert zoho.token_call_count == token_calls


@pytest.mark.parametrize(
    "redirect_url",
    [
        "javascript:alert(1)//\r\n",
        "http://example.com/oauth/callback",
        "//example.com/cb",
        "https://",
        "ftp://x/y",
        "https://user:pw@example.com/cb",
        "https://example.com/cb#frag",
    ],
)
def test_redirect_url_must_be_an_absolute_https_url(admin: httpx.Client, redirect_url: str) -> None:
    answer = admin.post("/admin/subscriptions", json={**BODY, "custom_fields": {"RedirectUrl": redirect_url}})

    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_request",
        "message": "RedirectUrl must be an absolute https URL (http only on 127.0.0.1 or localhost).",
    }
    assert admin.get("/admin/subscriptions").json()["subscriptions"] == []


def test_redirect_url_may_be_http_on_loopback_only_locally(admin: httpx.Client) -> None:
    body = {**BODY, "custom_fields": {"RedirectUrl": "http://127.0.0.1:3000/oauth/callback"}}
    assert admin.post("/admin/subscriptions", json=body).status_code == 201  # the suite runs as `make dev`
    https = {
        **BODY,
        "name": "B",
        "custom_fields": {"RedirectUrl": "https://broker.example.com/oauth/callback"},
    }
    assert admin.post("/admin/subscriptions", json=https).status_code == 201


# ------------------------------------------------------------------------------------------------
# Headers


def test_token_answers_are_never_cached(admin: httpx.Client, browser: httpx.Client) -> None:
    sid = create_subscription(admin)["subscription_id"]
    assert connect(admin, browser, sid).status_code == 200

    answer = admin.get(f"/admin/subscriptions/{sid}/token")

    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"


def test_pages_and_redirects_send_hsts(admin: httpx.Client, browser: httpx.Client) -> None:
    link = connect_link(admin, create_subscription(admin)["subscription_id"])
    page = browser.get(link)
    started = open_link(browser, link)
    for answer in (page, started):
        assert answer.headers["strict-transport-security"].startswith("max-age=31536000")


def test_a_secure_binding_cookie_carries_the_host_prefix() -> None:
    cookie = str(page_routes.binding_cookie("v" * 43, secure=True, max_age=600))
    assert cookie.startswith("__Host-zoho_broker_binding=")
    assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
    assert str(page_routes.binding_cookie("v" * 43, secure=False, max_age=600)).startswith(
        "zoho_broker_binding="
    )


# ------------------------------------------------------------------------------------------------
# Broken secrets, Zoho's odd rate-limit answer, and why a connect failed


@pytest.mark.parametrize(
    ("ending", "where"),
    [(",", "(document): json_invalid"), ("}", "refresh_token: string_type")],
    ids=["cut-short", "wrong-type"],
)
def test_a_corrupted_secret_is_reported_without_logging_its_content(
    admin: httpx.Client, caplog: pytest.LogCaptureFixture, ending: str, where: str
) -> None:
    caplog.set_level(logging.INFO)
    sid = create_subscription(admin)["subscription_id"]
    name = get_services().settings.secret_prefix + sid
    broken = (
        '{"client_id": "1000.ABC", "client_secret": "' + CLIENT_SECRET + '", "refresh_token": 12' + ending
    )
    boto3.client("secretsmanager").put_secret_value(SecretId=name, SecretString=broken)

    answer = admin.get(f"/admin/subscriptions/{sid}")

    assert answer.status_code == 409
    assert answer.json()["error"] == "secret_unreadable"
    assert CLIENT_SECRET not in answer.text
    logged = "\n".join(json.dumps(vars(record), default=str) for record in caplog.records)
    assert CLIENT_SECRET[:12] not in logged
    # The operator reads which subscription, and where the document is wrong
    line = logged_once(caplog, "subscription secret unreadable")
    assert (line["subscription_id"], line["problems"]) == (sid, [where])


@pytest.mark.parametrize(
    "body",
    [
        {"error": "Access Denied"},
        {"error": "access_denied"},
        {"error": "access_denied", "error_description": "You have made too many requests continuously."},
    ],
)
def test_zohos_access_denied_answers_are_rate_limiting_never_a_gone_token(body: dict[str, str]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    client = ZohoClient(transport=httpx.MockTransport(answer))
    for call in (
        lambda: client.revoke(
            revoke_url="https://accounts.zoho.eu/oauth/v2/token/revoke", refresh_token="1000.x"
        ),
        lambda: client.refresh(
            token_url="https://accounts.zoho.eu/oauth/v2/token",
            client_id="c",
            client_secret="s",
            refresh_token="r",
        ),
    ):
        with pytest.raises(ZohoError) as raised:
            call()
        assert raised.value.transient is True
        assert raised.value.zoho_code == "rate_limited"


def test_a_failed_code_exchange_tells_the_operator_why(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    sid = create_subscription(admin)["subscription_id"]
    zoho.inject_fault("invalid_code")

    assert connect(admin, browser, sid).status_code == 502

    view = admin.get(f"/admin/subscriptions/{sid}").json()
    assert view["status"] == "not_connected"
    assert view["last_error"] == "connect failed: invalid_code"


def test_changing_the_client_id_revokes_the_old_clients_refresh_token(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn
) -> None:
    sid = create_subscription(admin)["subscription_id"]
    assert connect(admin, browser, sid).status_code == 200
    old = stored_secret(get_services(), sid)["refresh_token"]

    answer = admin.patch(f"/admin/subscriptions/{sid}", json={"client_id": "1000.OTHERCLIENT"})

    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["revocation_pending"]) == ("not_connected", False)
    assert answer.json()["tokens"] == {"access_token": None, "refresh_token": None}
    # Nothing of the old connection is shown as if it still held: where it was, nor since when.
    gone = ("data_centre", "api_domain", "connected_at", "access_token_expires_at")
    assert {key: answer.json()[key] for key in gone} == dict.fromkeys(gone)
    assert {key: admin.get(f"/admin/subscriptions/{sid}").json()[key] for key in gone} == dict.fromkeys(gone)
    # A sync job reading Secrets Manager finds the new client and no token of the old one
    held = stored_secret(get_services(), sid)
    assert (held["client_id"], held["refresh_token"], held["access_token"]) == (
        "1000.OTHERCLIENT",
        None,
        None,
    )
    assert old not in zoho.live_refresh_tokens("1000.CLIENTID0123456789")
    assert [r.data_centre for r in zoho.requests if r.path == "/oauth/v2/token/revoke"] == ["us"]
    assert admin.get(f"/admin/subscriptions/{sid}/token").json()["error"] == "not_connected"


def test_a_forced_refresh_failing_on_a_fresh_token_does_not_leave_it_due(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = create_subscription(admin)["subscription_id"]
    assert connect(admin, browser, sid).status_code == 200
    zoho.inject_fault("server_error")
    # The refresher's clock stands still and the backoff's jitter is at its floor (one minute).
    clock = VirtualClock(int(time.time()))
    monkeypatch.setattr(get_services(), "clock", clock)
    monkeypatch.setattr(schedule, "random", Jitter(highest=False))

    assert admin.post(f"/admin/subscriptions/{sid}/refresh").status_code == 503

    # The retry waits until the token is really due (its own point of the refresh period, at least 15
    # minutes before expiry), and at least the backoff's minute: never sooner.
    view = admin.get(f"/admin/subscriptions/{sid}").json()
    expires_at = datetime.fromisoformat(view["access_token_expires_at"])
    margin = get_services().settings.refresh_margin_seconds
    due_at = schedule.phase_point(expires_at, margin, subscription_id=sid)
    next_at = datetime.fromisoformat(view["next_refresh_at"]).timestamp()
    assert next_at == max(due_at, clock.now + 60)
    assert sid not in set(get_services().subscriptions.due_for_refresh(due_before=int(clock.now) + 59))


def test_the_callback_function_outlasts_its_longest_wait() -> None:
    """A lease wait, Zoho twice (the exchange, then revoking a token that could not be stored) and the
    AWS writes (three attempts of the longest read timeout each) fit the function's timeout, and the
    timeout fits API Gateway's 30 s."""
    from tests.conftest import TEMPLATE
    from zoho_broker.config import Settings
    from zoho_broker.logic.connect import LEASE_WAIT_SECONDS

    timeout = TEMPLATE["Resources"]["CallbackFunction"]["Properties"]["Timeout"]
    zoho = Settings.model_fields["zoho_timeout_seconds"].default
    assert LEASE_WAIT_SECONDS + 2 * zoho + 5 <= timeout < 30
    assert TEMPLATE["Resources"]["AdminFunction"]["Properties"]["Timeout"] < 30

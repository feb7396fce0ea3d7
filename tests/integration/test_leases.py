"""The lease on every path that writes a subscription's tokens besides the refresh race (tested in
test_refresh.py): two callbacks, two revokes, two token requests, two forced refreshes at once. Zoho's
stand-in answers slowly so that the two callers overlap; each pair must reach Zoho as often as the flow
says and leave one outcome.

Each pair runs in two threads as two instances of its function would: the local gateway runs one request
at a time per function, as one Lambda instance does, so two requests through it would never overlap."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx
from aws_calls import on_call
from flow import connect_link, create_subscription, decide_at_zoho, open_link
from stored import expire_token, stored_secret

from broker_local.gateway import LocalApiGateway
from broker_local.zoho_standin import ZohoStandIn
from zoho_broker.errors import ConnectLinkInvalid
from zoho_broker.logic import connect, lease, refresh, revocation
from zoho_broker.models import AccessToken, RefreshResult
from zoho_broker.page_routes import BINDING_COOKIE
from zoho_broker.services import Services
from zoho_broker.store import aws

T = TypeVar("T")
SLOW_ZOHO_SECONDS = 0.8


def race[T](*callers: Callable[[], T]) -> list[T]:
    """Run the callers at the same moment in threads; their results in the callers' order."""
    start = threading.Barrier(len(callers))
    results: list[Any] = [None] * len(callers)

    def run(index: int) -> None:
        start.wait()
        results[index] = callers[index]()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(callers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def _zoho_calls(zoho: ZohoStandIn, path: str) -> int:
    return sum(1 for request in zoho.requests if request.path == path)


def caught[T](call: Callable[[], T]) -> Callable[[], T | Exception]:
    """The call's result, or the error it raised (a thread's exception is otherwise lost)."""

    def run() -> T | Exception:
        try:
            return call()
        except Exception as error:
            return error

    return run


def _finish_consent(services: Services, person: httpx.Client, callback_url: str) -> Callable[[], Any]:
    """What the callback function does with Zoho's redirect: the person's query and binding cookie."""
    query = dict(parse_qsl(urlsplit(callback_url).query))
    params = connect.CallbackParams(
        state=query["state"],
        code=query.get("code"),
        location=query.get("location"),
        accounts_server=query.get("accounts-server"),
    )
    cookie = person.cookies.get(BINDING_COOKIE)
    return caught(lambda: connect.complete(services, params, browser_binding=cookie))


def test_a_connect_link_opened_twice_at_once_is_used_once(
    admin: httpx.Client, gateway: LocalApiGateway, services: Services
) -> None:
    # Given a connect link pressed twice at the same moment (two instances of the start function)
    sid = create_subscription(admin)["subscription_id"]
    token = urlsplit(connect_link(admin, sid)).path.rsplit("/", 1)[-1]

    def press() -> Callable[[], Any]:
        return caught(
            lambda: connect.start(services, link_token=token, browser_binding=None, base_url=gateway.base_url)
        )

    both_checked = threading.Barrier(2, timeout=10)

    def after_both_checked(**_: Any) -> None:
        both_checked.wait()  # both found the link usable before either uses it up: the transaction decides

    with on_call(aws.dynamodb(), "TransactWriteItems", after_both_checked, name="both-checked"):
        outcomes = race(press(), press())

    # Then one is sent to Zoho, and the other is told the link was used, not that the broker failed
    [sent] = [outcome for outcome in outcomes if isinstance(outcome, connect.StartOutcome)]
    [refused] = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    assert sent.subscription_id == sid
    assert isinstance(refused, ConnectLinkInvalid), refused
    assert str(refused) == "This connect link has expired or was already used."


def test_two_consents_finishing_at_once_connect_once(
    admin: httpx.Client, gateway: LocalApiGateway, zoho: ZohoStandIn, services: Services
) -> None:
    # Given two people (two browsers) with a connect link each, both at Zoho's consent page
    sid = create_subscription(admin)["subscription_id"]
    finishes = []
    for data_centre in ("us", "eu"):
        person = httpx.Client(base_url=gateway.base_url, timeout=30)
        started = open_link(person, connect_link(admin, sid))
        callback = decide_at_zoho(person, started.headers["location"], data_centre=data_centre)
        finishes.append(_finish_consent(services, person, callback))
        person.close()
    zoho.set_latency(SLOW_ZOHO_SECONDS)

    # When both come back to the callback at the same moment (two instances of the callback function)
    outcomes = race(*finishes)

    # Then one code is exchanged at Zoho and one connection holds; the other person is told why
    assert _zoho_calls(zoho, "/oauth/v2/token") == 1
    [winner] = [outcome for outcome in outcomes if isinstance(outcome, connect.ConnectOutcome)]
    [loser] = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    assert "was replaced" in str(loser), loser
    assert admin.get(f"/admin/subscriptions/{sid}").json()["data_centre"] == winner.data_centre
    assert stored_secret(services, sid)["data_centre"] == winner.data_centre


def test_two_revokes_at_once_revoke_at_zoho_once(
    admin: httpx.Client, zoho: ZohoStandIn, connected: Callable[..., str], services: Services
) -> None:
    # Given a connected subscription and a slow Zoho
    sid = connected()
    zoho.set_latency(SLOW_ZOHO_SECONDS)

    # When two operators revoke it at the same moment (two instances of the admin function)
    outcomes = race(*(caught(lambda: revocation.disconnect(services, sid)) for _ in range(2)))

    # Then Zoho is asked once, and the subscription is disconnected with nothing pending
    assert outcomes == [None, None]
    assert _zoho_calls(zoho, "/oauth/v2/token/revoke") == 1
    view = admin.get(f"/admin/subscriptions/{sid}").json()
    assert (view["status"], view["revocation_pending"]) == ("not_connected", False)
    assert stored_secret(services, sid)["pending_revocations"] == []


def test_two_token_requests_for_an_expiring_token_refresh_once(
    zoho: ZohoStandIn, connected: Callable[..., str], services: Services
) -> None:
    # Given a token that expires within the token route's five minutes, and a slow Zoho
    sid = connected()
    expire_token(services, sid, seconds_left=120)
    calls = _zoho_calls(zoho, "/oauth/v2/token")
    zoho.set_latency(SLOW_ZOHO_SECONDS)

    # When two consumers ask for a token at the same moment (two instances of the admin function)
    outcomes = race(*(caught(lambda: refresh.vend_token(services, sid)) for _ in range(2)))

    # Then Zoho refreshes once and both consumers get that one new token
    assert _zoho_calls(zoho, "/oauth/v2/token") == calls + 1
    tokens = {outcome.access_token for outcome in outcomes if isinstance(outcome, AccessToken)}
    assert tokens == {stored_secret(services, sid)["access_token"]}, outcomes


def test_two_forced_refreshes_at_once_both_succeed_one_after_the_other(
    zoho: ZohoStandIn, connected: Callable[..., str], services: Services
) -> None:
    # Given a connected subscription and a slow Zoho
    sid = connected()
    calls = _zoho_calls(zoho, "/oauth/v2/token")
    zoho.set_latency(SLOW_ZOHO_SECONDS)

    # When two operators press Refresh at the same moment, served by two admin function instances (the
    # local gateway runs one request at a time per function, so the race is run here, in two threads)
    outcomes = race(*(caught(lambda: refresh.refresh_now(services, sid)) for _ in range(2)))

    # Then the second waits for the first's lease instead of being turned away, and refreshes in turn
    results = [outcome.result for outcome in outcomes if not isinstance(outcome, Exception)]
    assert results == [RefreshResult.REFRESHED, RefreshResult.REFRESHED], outcomes
    assert _zoho_calls(zoho, "/oauth/v2/token") == calls + 2


def test_a_forced_refresh_while_another_holds_the_lease_past_the_wait_says_to_try_again(
    admin: httpx.Client, zoho: ZohoStandIn, connected: Callable[..., str], services: Services
) -> None:
    # Given a refresh elsewhere that holds the subscription's lease longer than an operator's 5 s wait
    sid = connected()
    calls = _zoho_calls(zoho, "/oauth/v2/token")
    with lease.held(services, sid, purpose="refresh"):
        # When an operator presses Refresh
        answer = admin.post(f"/admin/subscriptions/{sid}/refresh")

    # Then they are told to try again (nothing was sent to Zoho), and trying again works
    assert (answer.status_code, answer.json()["error"]) == (503, "busy")
    assert answer.json()["message"] == (
        "Another refresh of this subscription is under way; try again in a few seconds."
    )
    assert _zoho_calls(zoho, "/oauth/v2/token") == calls
    assert admin.post(f"/admin/subscriptions/{sid}/refresh").status_code == 200

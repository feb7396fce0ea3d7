"""The lease on every path that writes a subscription's tokens besides the refresh race (tested in
test_refresh.py): two callbacks, two revokes, two token requests at once. Zoho's stand-in answers slowly
so that the two callers overlap; each pair must reach Zoho once and leave one outcome."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from flow import connect_link, create_subscription, decide_at_zoho, open_link
from stored import expire_token, stored_secret

from broker_local.gateway import LocalApiGateway
from broker_local.zoho_standin import ZohoStandIn
from zoho_broker.logic import refresh
from zoho_broker.logic.refresh import RefreshResult
from zoho_broker.services import Services

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


def test_two_consents_finishing_at_once_connect_once(
    admin: httpx.Client, gateway: LocalApiGateway, zoho: ZohoStandIn, services: Services
) -> None:
    # Given two people (two browsers) with a connect link each, both at Zoho's consent page
    sid = create_subscription(admin)["subscription_id"]
    callbacks = []
    people = [httpx.Client(base_url=gateway.base_url, timeout=30) for _ in range(2)]
    for person, data_centre in zip(people, ("us", "eu"), strict=True):
        started = open_link(person, connect_link(admin, sid))
        callbacks.append(decide_at_zoho(person, started.headers["location"], data_centre=data_centre))
    zoho.set_latency(SLOW_ZOHO_SECONDS)

    # When both come back to the callback at the same moment
    pages = race(*(lambda p=person, c=url: p.get(c) for person, url in zip(people, callbacks, strict=True)))
    for person in people:
        person.close()

    # Then one code is exchanged at Zoho and one connection holds; the other person is told why
    assert _zoho_calls(zoho, "/oauth/v2/token") == 1
    statuses = sorted(page.status_code for page in pages)
    assert statuses == [200, 400], [page.text for page in pages]
    [winner] = [page for page in pages if page.status_code == 200]
    [loser] = [page for page in pages if page.status_code == 400]
    assert "was replaced" in loser.text
    data_centre = "us" if "(US)" in winner.text else "eu"
    assert admin.get(f"/admin/subscriptions/{sid}").json()["data_centre"] == data_centre
    assert stored_secret(services, sid)["data_centre"] == data_centre


def test_two_revokes_at_once_revoke_at_zoho_once(
    admin: httpx.Client, zoho: ZohoStandIn, connected: Callable[..., str], services: Services
) -> None:
    # Given a connected subscription and a slow Zoho
    sid = connected()
    zoho.set_latency(SLOW_ZOHO_SECONDS)

    # When two operators revoke it at the same moment
    answers = race(*(lambda: admin.post(f"/admin/subscriptions/{sid}/revoke") for _ in range(2)))

    # Then Zoho is asked once, and both see the subscription disconnected with nothing pending
    assert _zoho_calls(zoho, "/oauth/v2/token/revoke") == 1
    assert [answer.status_code for answer in answers] == [200, 200]
    assert [answer.json()["status"] for answer in answers] == ["not_connected", "not_connected"]
    assert [answer.json()["revocation_pending"] for answer in answers] == [False, False]
    assert stored_secret(services, sid)["pending_revocations"] == []


def test_two_token_requests_for_an_expiring_token_refresh_once(
    admin: httpx.Client, zoho: ZohoStandIn, connected: Callable[..., str], services: Services
) -> None:
    # Given a token that expires within the token route's five minutes, and a slow Zoho
    sid = connected()
    expire_token(services, sid, seconds_left=120)
    calls = _zoho_calls(zoho, "/oauth/v2/token")
    zoho.set_latency(SLOW_ZOHO_SECONDS)

    # When two consumers ask for a token at the same moment
    answers = race(*(lambda: admin.get(f"/admin/subscriptions/{sid}/token") for _ in range(2)))

    # Then Zoho refreshes once and both consumers get that one new token
    assert _zoho_calls(zoho, "/oauth/v2/token") == calls + 1
    assert [answer.status_code for answer in answers] == [200, 200]
    tokens = {answer.json()["access_token"] for answer in answers}
    assert tokens == {stored_secret(services, sid)["access_token"]}


def test_two_forced_refreshes_at_once_both_succeed_one_after_the_other(
    zoho: ZohoStandIn, connected: Callable[..., str], services: Services
) -> None:
    # Given a connected subscription and a slow Zoho
    sid = connected()
    calls = _zoho_calls(zoho, "/oauth/v2/token")
    zoho.set_latency(SLOW_ZOHO_SECONDS)

    # When two operators press Refresh at the same moment, served by two admin function instances (the
    # local gateway runs one request at a time per function, so the race is run here, in two threads)
    outcomes = race(*(lambda: refresh.refresh_now(services, sid) for _ in range(2)))

    # Then the second waits for the first's lease instead of being turned away, and refreshes in turn
    assert [outcome.result for outcome in outcomes] == [RefreshResult.REFRESHED, RefreshResult.REFRESHED]
    assert _zoho_calls(zoho, "/oauth/v2/token") == calls + 2

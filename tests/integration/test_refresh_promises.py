"""What "Keeping tokens fresh" promises, checked through the sweep with moto and the Zoho stand-in: the
backoff from one minute to an hour, `invalid_client` ending a connection at once, and a sweep that finds
due subscriptions by their index, never by scanning the table."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from stored import Announcements, expire_token, stored_secret

from broker_local.zoho_standin import ZohoStandIn
from tests.clocks import Jitter, VirtualClock
from zoho_broker.logic import refresh, schedule
from zoho_broker.models import RefreshResult
from zoho_broker.services import Services
from zoho_broker.store import aws

# 01:00 UTC: a day of retries fits before midnight, so every failure counts on the same failing day.
START = datetime(2026, 11, 24, 1, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def clock(services: Services, monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    virtual = VirtualClock(START)
    monkeypatch.setattr(services, "clock", virtual)
    return virtual


def _next_refresh_at(admin: httpx.Client, sid: str) -> float:
    view = admin.get(f"/admin/subscriptions/{sid}").json()
    return datetime.fromisoformat(view["next_refresh_at"]).timestamp()


def _retry_delays(
    admin: httpx.Client, zoho: ZohoStandIn, services: Services, clock: VirtualClock, sid: str, failures: int
) -> list[int]:
    """Let the sweep meet a failing Zoho ``failures`` times, each when the retry is due; the delays."""
    delays = []
    for _ in range(failures):
        zoho.inject_fault("unavailable")
        summary = refresh.sweep(services)
        assert summary == refresh.SweepSummary(due=1, refreshed_inline=0, queued=0)
        due = _next_refresh_at(admin, sid)
        delays.append(int(due - clock.now))
        clock.now = due
    return delays


@pytest.mark.parametrize(
    ("highest", "minutes"),
    [
        (True, [2, 4, 8, 16, 32, 60, 60, 60]),  # the jitter's top: doubling from 2 minutes, capped at 1 hour
        (False, [1, 1, 1, 1, 1, 1, 1, 1]),  # its bottom: never sooner than 1 minute
    ],
)
def test_backoff_grows_from_a_minute_to_an_hour_once_the_token_has_expired(
    admin: httpx.Client,
    zoho: ZohoStandIn,
    services: Services,
    connected: Callable[..., str],
    clock: VirtualClock,
    monkeypatch: pytest.MonkeyPatch,
    highest: bool,
    minutes: list[int],
) -> None:
    # Given a subscription whose token has run out, and a Zoho that keeps failing
    sid = connected()
    expire_token(services, sid, seconds_left=-60, now=clock.now)
    monkeypatch.setattr(schedule, "random", Jitter(highest=highest))

    # When the sweep retries each time the retry comes due
    delays = _retry_delays(admin, zoho, services, clock, sid, failures=len(minutes))

    # Then the retries back off as the README says, and the subscription still waits for Zoho
    assert delays == [60 * m for m in minutes]
    view = admin.get(f"/admin/subscriptions/{sid}").json()
    assert (view["status"], view["failing_days"], view["last_error"]) == ("connected", 1, "http_503")


def test_retries_stay_ahead_of_a_token_that_still_works(
    admin: httpx.Client,
    zoho: ZohoStandIn,
    services: Services,
    connected: Callable[..., str],
    clock: VirtualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a token that works for 10 more minutes, and a backoff that would wait 2 then 4 minutes
    sid = connected()
    expire_token(services, sid, seconds_left=600, now=clock.now)
    monkeypatch.setattr(schedule, "random", Jitter(highest=True))

    # When Zoho fails twice
    delays = _retry_delays(admin, zoho, services, clock, sid, failures=2)

    # Then the second retry comes 6 minutes before the token expires, not after the full backoff
    assert delays == [120, 600 - 120 - schedule.EXPIRY_LEAD_SECONDS]


def test_invalid_client_on_refresh_needs_re_authentication_at_once(
    admin: httpx.Client,
    zoho: ZohoStandIn,
    services: Services,
    connected: Callable[..., str],
    announcements: Announcements,
) -> None:
    # Given a connected subscription whose API Console client Zoho no longer knows
    sid = connected(name="Deleted Client Co")
    expire_token(services, sid, seconds_left=60)
    zoho.inject_fault("invalid_client")

    # When the sweep refreshes it, on its first failing day
    refresh.sweep(services)

    # Then it needs re-authentication at once, leaves the sweep's index, and it is announced
    view = admin.get(f"/admin/subscriptions/{sid}").json()
    assert (view["status"], view["last_error"], view["next_refresh_at"]) == (
        "needs_reauthentication",
        "invalid_client",
        None,
    )
    [event] = announcements.read()
    assert event["detail-type"] == "SubscriptionNeedsReauthentication"
    assert (event["detail"]["subscription_id"], event["detail"]["reason"]) == (sid, "invalid_client")
    assert event["detail"]["failing_days"] == 1
    assert admin.get(f"/admin/subscriptions/{sid}/token").json()["error"] == "needs_reauthentication"


def test_a_subscription_needing_re_authentication_is_left_alone_until_a_person_reconnects(
    zoho: ZohoStandIn, services: Services, connected: Callable[..., str]
) -> None:
    # Given a subscription Zoho refused, flagged for re-authentication, and Zoho working again
    sid = connected()
    expire_token(services, sid, seconds_left=60)
    zoho.inject_fault("invalid_client")
    refresh.refresh(services, sid)
    calls = zoho.token_call_count

    # When a refresher still reaches it (a queued message, a refresh due before it was flagged)
    outcome = refresh.refresh(services, sid)

    # Then it is skipped, saying why, and Zoho is not asked again with a token it refused
    assert (outcome.result, outcome.error) == (RefreshResult.SKIPPED, "needs re-authentication")
    assert zoho.token_call_count == calls


@pytest.fixture
def dynamodb_operations(services: Services) -> Iterator[list[str]]:
    """The name of every DynamoDB call the broker's own client makes while the test runs."""
    client = aws.dynamodb()  # the one DynamoDB client every store of the process uses
    seen: list[str] = []

    def record(model: Any, **_: Any) -> None:
        seen.append(model.name)

    client.meta.events.register("before-call.dynamodb", record)
    yield seen
    client.meta.events.unregister("before-call.dynamodb", record)


def test_the_sweep_queries_the_due_index_and_never_scans(
    admin: httpx.Client,
    services: Services,
    connected: Callable[..., str],
    dynamodb_operations: list[str],
) -> None:
    # Given a due subscription among others that are not due
    due = connected(name="Due")
    fresh = [connected(name=f"Fresh {n}") for n in range(3)]
    expire_token(services, due, seconds_left=120)
    before = {sid: stored_secret(services, sid)["access_token"] for sid in [due, *fresh]}
    dynamodb_operations.clear()

    # When the scheduled sweep runs
    summary = refresh.sweep(services)

    # Then it refreshed the due one, found through the index with a Query, and scanned nothing
    assert summary == refresh.SweepSummary(due=1, refreshed_inline=1, queued=0)
    assert stored_secret(services, due)["access_token"] != before[due]
    assert all(stored_secret(services, sid)["access_token"] == before[sid] for sid in fresh)
    assert "Query" in dynamodb_operations
    assert "Scan" not in dynamodb_operations

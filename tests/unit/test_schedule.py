"""When subscriptions come due: phases spread a bulk onboarding evenly, never past the margin."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from zoho_broker.logic import schedule

MARGIN = 900
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_subscriptions_onboarded_together_are_spread_over_a_period() -> None:
    # Given subscriptions onboarded together, then they are due evenly over one period, never past the margin.
    expires = NOW + timedelta(seconds=3600)
    ids = [f"sub_{n:016x}" for n in range(9000)]

    dues = [schedule.next_due(expires, NOW, MARGIN, subscription_id=sid) for sid in ids]

    latest = int(expires.timestamp()) - MARGIN
    period = schedule.refresh_period(MARGIN)
    assert all(int(NOW.timestamp()) <= due <= latest for due in dues)
    # Nine buckets of five minutes over the 45-minute period: each holds about a ninth.
    buckets = Counter((latest - due) * 9 // period for due in dues)
    assert sorted(buckets) == list(range(9))
    assert all(800 <= count <= 1200 for count in buckets.values()), buckets


def test_once_refreshed_at_its_point_a_subscription_keeps_it_every_period() -> None:
    sid = "sub_0123456789abcdef"
    first = schedule.next_due(NOW + timedelta(seconds=3600), NOW, MARGIN, subscription_id=sid)
    # Refreshed a few minutes late (the sweep's interval, the queue): the point does not drift.
    refreshed = datetime.fromtimestamp(first + 240, UTC)

    second = schedule.next_due(refreshed + timedelta(seconds=3600), refreshed, MARGIN, subscription_id=sid)

    assert second - first == schedule.refresh_period(MARGIN)
    assert not schedule.is_due(refreshed + timedelta(seconds=3600), refreshed, MARGIN, subscription_id=sid)


def test_a_token_already_past_its_point_is_due_now() -> None:
    expires = NOW + timedelta(seconds=600)  # inside the margin

    due = schedule.next_due(expires, NOW, MARGIN, subscription_id="sub_late")

    assert due == int(NOW.timestamp())
    assert schedule.is_due(expires, NOW, MARGIN, subscription_id="sub_late")


def test_the_first_backoff_is_jittered_between_the_base_and_twice_it() -> None:
    rng = random.Random(7)

    first = [schedule.backoff_seconds(1, base=60, cap=3600, rng=rng) for _ in range(500)]
    later = [schedule.backoff_seconds(10, base=60, cap=3600, rng=rng) for _ in range(500)]

    assert min(first) >= 60 and max(first) <= 120
    assert len(set(first)) > 30  # spread, not one value for everyone who failed together
    assert max(later) <= 3600

"""When each subscription is refreshed next: a fixed phase per subscription, and jittered backoff.

Pure functions of their arguments (no clock, no AWS), shared by the refresher and by the simulation in
``benchmarks/simulate.py``, which runs them on a virtual clock.

Why a phase and not random jitter: subscriptions onboarded together get tokens that expire together.
Jitter drawn inside the margin moves each refresh by at most a few minutes per cycle, so a bulk
onboarding stays a burst for many cycles. Instead every subscription owns a point of the refresh
period (a hash of its id), and its refresh is due at the last point of its phase that still leaves the
margin before the token expires. Due times are then spread evenly over the period from the first
cycle on and stay so; a token is never due later than ``margin`` before it expires.
"""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta

# Zoho's access tokens live an hour (expires_in 3600); the period is what remains after the margin.
TOKEN_LIFETIME_SECONDS = 3600
# Subscriptions are refreshed at least daily even when nothing else asks for it.
MAX_REFRESH_INTERVAL = timedelta(days=1)
# A retry comes due at least this long before the token expires: the sweep's interval (5 minutes) and
# a minute for the queue, so that a backoff never lets a working token run out.
EXPIRY_LEAD_SECONDS = 360


def refresh_period(margin_seconds: int) -> int:
    """Seconds between two refreshes of one subscription in the steady state."""
    return TOKEN_LIFETIME_SECONDS - margin_seconds


def phase_fraction(subscription_id: str) -> float:
    """A stable point in [0, 1) per subscription, evenly spread over subscription ids."""
    digest = hashlib.blake2b(subscription_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64


def phase_point(expires_at: datetime, margin_seconds: int, *, subscription_id: str) -> int:
    """Epoch second of the subscription's last phase point at or before ``expires_at - margin``."""
    latest = int(expires_at.timestamp()) - margin_seconds
    period = refresh_period(margin_seconds)
    phase = int(phase_fraction(subscription_id) * period)
    return latest - (latest - phase) % period  # in (latest - period, latest]


def is_due(expires_at: datetime, now: datetime, margin_seconds: int, *, subscription_id: str) -> bool:
    """Whether the scheduled refresh of a token expiring at ``expires_at`` has come."""
    return phase_point(expires_at, margin_seconds, subscription_id=subscription_id) <= int(now.timestamp())


def next_due(expires_at: datetime, now: datetime, margin_seconds: int, *, subscription_id: str) -> int:
    """Epoch second of the next refresh: the phase point, never before ``now`` nor a day away."""
    due = phase_point(expires_at, margin_seconds, subscription_id=subscription_id)
    ceiling = int((now + MAX_REFRESH_INTERVAL).timestamp())
    return max(min(due, ceiling), int(now.timestamp()))


def backoff_seconds(failures: int, *, base: int, cap: int, rng: random.Random | None = None) -> int:
    """Exponential backoff with jitter, the first retry included (between ``base`` and twice it), so
    subscriptions that failed together do not come back together."""
    ceiling = min(cap, base * 2 ** max(1, failures))
    return (rng or random).randint(base, max(base, ceiling))


def retry_due(now: int, delay: int, expires_at: int | None, *, base: int) -> int:
    """When to retry after a passing failure: after the backoff ``delay``, but while the current token
    still works (``EXPIRY_LEAD_SECONDS`` before it expires), and never sooner than ``base``. Once the
    token has expired there is nothing left to save: the whole backoff applies, up to its cap."""
    due = now + delay
    if expires_at is not None and expires_at > now:
        due = min(due, max(now + base, expires_at - EXPIRY_LEAD_SECONDS))
    return due

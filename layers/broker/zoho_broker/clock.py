"""The time source of the refresher's scheduling, pacing and lease code.

Injected through ``Services`` so that a simulation can run the same code on a virtual clock (no real
sleeping) and tests can move time without waiting.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch (wall clock: due times and lease expiries are stored as such)."""
        ...

    def monotonic(self) -> float:
        """Seconds for measuring waits; never goes back."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


def utc_now(clock: Clock) -> datetime:
    """The clock's time as an aware datetime, to the second (as ``models.utc_now``)."""
    return datetime.fromtimestamp(int(clock.time()), UTC)

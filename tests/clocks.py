"""Time and chance under the test's control: a clock the test moves (the refresher's scheduling, pacing
and lease code read time through it) and the backoff's random draw pinned."""

from __future__ import annotations


class VirtualClock:
    """Time stands still until the test (or a wait) moves it; waits pass at once."""

    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class Jitter:
    """The backoff's random draw pinned to one end of its range."""

    def __init__(self, *, highest: bool) -> None:
        self.highest = highest

    def randint(self, low: int, high: int) -> int:
        return high if self.highest else low

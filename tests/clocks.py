"""A clock the test moves: the refresher's scheduling, pacing and lease code read time through it."""

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

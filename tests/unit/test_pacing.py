"""The write budget's waiting logic on a virtual clock: no window gets more than its budget."""

from __future__ import annotations

from collections import Counter

from tests.clocks import VirtualClock
from zoho_broker.config import Settings
from zoho_broker.logic.pacing import take_slot
from zoho_broker.services import Services


class Windows:
    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.refused = 0

    def take(self, window: int, limit: int) -> bool:
        if self.counts[window] >= limit:
            self.refused += 1
            return False
        self.counts[window] += 1
        return True


def test_callers_beyond_the_budget_wait_for_the_next_window() -> None:
    clock, windows = VirtualClock(1000.2), Windows()

    granted = [take_slot(windows, clock, per_second=3, deadline=clock.now + 10) for _ in range(10)]

    assert granted == [True] * 10
    assert windows.counts == {1000: 3, 1001: 3, 1002: 3, 1003: 1}
    assert windows.refused == 3
    assert clock.now == 1003.0


def test_a_caller_whose_deadline_comes_first_gets_no_slot() -> None:
    clock, windows = VirtualClock(50.5), Windows()
    windows.counts[50] = 2

    assert take_slot(windows, clock, per_second=2, deadline=50.9) is False
    assert windows.counts[51] == 0


def test_a_slot_asked_for_at_a_seconds_end_waits_for_the_next() -> None:
    # A slot asked for at the very end of a second is taken in the next one, and waits for it.
    clock, windows = VirtualClock(70.98), Windows()

    assert take_slot(windows, clock, per_second=5, deadline=80.0) is True
    assert windows.counts == {71: 1}
    assert clock.now == 71.0  # the write goes out in the second that counted it


def test_without_a_budget_table_every_write_goes_at_once() -> None:
    # Given a stack whose write budget table is not configured
    tables = ("SUBSCRIPTIONS_TABLE", "FLOWS_TABLE", "SECRET_PREFIX", "STATE_KEY_SECRET_ID")
    services = Services(Settings.from_env({f"BROKER_{name}": "x" for name in tables}))
    clock = VirtualClock(70.0)

    # When a hundred writes ask for a slot within one second
    granted = [take_slot(services.write_budget, clock, per_second=1, deadline=70.0) for _ in range(100)]

    # Then each goes at once: nothing counts them, nothing waits
    assert granted == [True] * 100
    assert clock.now == 70.0

"""The per-region budget of secret writes (PutSecretValue), shared by every refresher at once.

Secrets Manager accepts 50 PutSecretValue a second per region, for all writers together. The broker
keeps its own writes under ``secret_writes_per_second`` (40 by default) with one counter per
one-second window, taken by a conditional increment (DynamoDB in production, a dictionary in the
simulation): whoever finds the window spent waits for the next one instead of writing.

A slot is taken immediately before each write attempt, not before asking Zoho: a slot taken earlier
would be spent in a later second whenever Zoho is slow, and the cap per second would not hold. The
cost is that a worker may hold a minted token while it waits; each worker holds at most one, and the
wait is bounded by (workers / budget) seconds when every worker competes.
"""

from __future__ import annotations

from typing import Protocol

from zoho_broker.clock import Clock

# The time a write takes from its slot to Secrets Manager (the slot's own request, a network hop).
GUARD_SECONDS = 0.05


class WindowCounter(Protocol):
    def take(self, window: int, limit: int) -> bool:
        """Count one write in ``window`` (an epoch second) if fewer than ``limit`` were; atomically."""
        ...


class Unpaced:
    """No budget (no table configured): every write may go."""

    def take(self, window: int, limit: int) -> bool:
        return True


def try_slot(counter: WindowCounter, now: float, per_second: int) -> tuple[bool, float]:
    """Take a write slot: ``(True, when to write)``, or ``(False, when to ask again)``.

    Within ``GUARD_SECONDS`` of a window's end the slot is taken in the next window and the write waits
    for it: written at once, it would reach Secrets Manager in the next second, uncounted there.
    """
    window = int(now)
    if now - window > 1 - GUARD_SECONDS:
        window += 1
    if counter.take(window, per_second):
        return True, max(now, float(window))
    return False, float(window + 1)


def take_slot(counter: WindowCounter, clock: Clock, *, per_second: int, deadline: float) -> bool:
    """Wait for a write slot until ``deadline`` (clock seconds); False when none came in time."""
    while True:
        now = clock.time()
        granted, at = try_slot(counter, now, per_second)
        if granted:
            clock.sleep(at - now)
            return True
        if at > deadline:
            return False
        clock.sleep(at - now)

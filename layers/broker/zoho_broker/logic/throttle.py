"""A subscription's throttling, honoured by every Lambda at once: at most ``max_concurrent_requests``
calls under way and turns at least 60 s / ``requests_per_minute`` apart (each call starting within a
short grace after its own), so no 60-second window ever holds more than ``requests_per_minute`` starts. Over a limit the caller gets Throttled (429 with
Retry-After) or, when it asked to wait, its call starts when its turn comes (bounded).

Starts are spaced evenly (no burst allowance): a burst would let a sliding minute exceed the rate.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from zoho_broker.catalogue import Throttling
from zoho_broker.clock import Clock
from zoho_broker.errors import BrokerError, ServiceUnavailable
from zoho_broker.store.throttle import Claim, Refusal, ThrottleStore

logger = Logger(child=True)

MICROSECONDS = 1_000_000
# A call starts within this long after its turn, or gives the turn up and queues again: so a call held
# up by full slots never starts close behind a later turn. Turns are spaced (60 s + this) / rpm apart,
# which keeps every 60-second window within the rate however late in its grace a call starts.
GRACE_SECONDS = 0.25
# Polling for a free slot at the turn: from this, doubling up to the cap, with jitter.
FIRST_POLL_SECONDS = 0.02
MAX_POLL_SECONDS = 0.1
# A slot full of live claims frees itself at no known time: a refused caller is told to retry after this.
CONCURRENCY_RETRY_SECONDS = 1
MAX_ATTEMPTS = 500


class Throttled(BrokerError):
    """The subscription's rate or concurrency is used up; ``retry_after`` says when to ask again."""

    status_code = 429
    code = "throttled"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))


@dataclass(frozen=True)
class Turn:
    """A call's claim: its slot (released when the call ends) and its turn (the earliest it started)."""

    subscription_id: str
    owner: str
    start_us: int


def interval_us(throttling: Throttling) -> int:
    """The spacing of turns: 60 s (plus the grace a late start may use) over ``requests_per_minute``."""
    return math.ceil((60 + GRACE_SECONDS) * MICROSECONDS / throttling.requests_per_minute)


def _slots_busy(throttling: Throttling) -> Throttled:
    return Throttled(
        f"Too many calls for this subscription: {throttling.max_concurrent_requests} calls are under way.",
        retry_after=CONCURRENCY_RETRY_SECONDS,
    )


class Throttle:
    """One per Lambda instance; remembers per subscription whether turns were queued ahead."""

    def __init__(self, store: ThrottleStore, clock: Clock, *, slot_seconds: float) -> None:
        self.store = store
        self.clock = clock
        self.slot_seconds = slot_seconds
        self._next_start: dict[str, int] = {}

    def acquire(self, subscription_id: str, throttling: Throttling, *, wait_seconds: float) -> Turn:
        """A turn, then a slot, waiting for them at most ``wait_seconds``. A caller whose turn lies ahead
        sleeps holding no slot and takes one at its turn; if none frees within the grace, it queues again."""
        deadline = self.clock.monotonic() + wait_seconds
        for _ in range(MAX_ATTEMPTS):
            owner = uuid.uuid4().hex  # a claim of its own each time: a turn given up leaves nothing behind
            turn = self._turn(subscription_id, owner, throttling, deadline)
            if turn is None:
                continue  # the item was created, or expired slots removed: ask again
            start_us, started = turn
            if started or self._slot_at(subscription_id, owner, throttling, start_us):
                return Turn(subscription_id, owner, start_us)
            if self.clock.monotonic() >= deadline:
                raise _slots_busy(throttling)
        raise Throttled("Too many calls for this subscription; retry shortly.", retry_after=1)

    def _turn(
        self, subscription_id: str, owner: str, throttling: Throttling, deadline: float
    ) -> tuple[int, bool] | None:
        """A turn's start and whether its slot came with it (one write; else it is still to take); None
        to ask again. Raises Throttled when no turn or slot comes within the wait."""
        now_us = int(self.clock.time() * MICROSECONDS)
        remaining = max(0.0, deadline - self.clock.monotonic())
        interval = interval_us(throttling)
        if self._next_start.get(subscription_id, 0) <= now_us:
            outcome = self.store.start_now(subscription_id, self._claim(owner, throttling, now_us), interval)
            if isinstance(outcome, int):
                self._next_start[subscription_id] = outcome + interval
                return outcome, True
            if self._created(subscription_id, outcome, now_us):
                return None
            if outcome.next_start_us <= now_us:  # the turn is free, the slots are not
                if self._remove_expired(subscription_id, outcome.slots, now_us):
                    return None
                if remaining <= 0:
                    raise _slots_busy(throttling)
        granted = self.store.reserve(
            subscription_id,
            now_us=now_us,
            interval_us=interval,
            latest_us=now_us + int(remaining * MICROSECONDS),
            queued=self._next_start.get(subscription_id, 0) > now_us,
        )
        if isinstance(granted, int):
            self._next_start[subscription_id] = granted + interval
            return granted, False
        if self._created(subscription_id, granted, now_us):
            return None
        if granted.next_start_us > now_us + int(remaining * MICROSECONDS):
            # The turn lies beyond the wait; waiting longer cannot bring it closer.
            raise Throttled(
                "Too many calls for this subscription: the rate of "
                f"{throttling.requests_per_minute} calls a minute is used up.",
                retry_after=(granted.next_start_us - now_us) / MICROSECONDS,
            )
        return None  # the item moved between the two forms: ask again

    def _slot_at(self, subscription_id: str, owner: str, throttling: Throttling, start_us: int) -> bool:
        """Sleep until the turn, then take a slot within the grace; False if none freed (turn given up)."""
        self.clock.sleep(max(0.0, (start_us - int(self.clock.time() * MICROSECONDS)) / MICROSECONDS))
        last_us = start_us + int(GRACE_SECONDS * MICROSECONDS)
        poll = FIRST_POLL_SECONDS
        for _ in range(MAX_ATTEMPTS):
            now_us = int(self.clock.time() * MICROSECONDS)
            if now_us > last_us:
                return False
            refusal = self.store.take_slot(subscription_id, self._claim(owner, throttling, now_us))
            if refusal is None:
                if int(self.clock.time() * MICROSECONDS) <= last_us:
                    return True
                self.release(Turn(subscription_id, owner, start_us))  # taken too late to start
                return False
            if refusal.missing:
                self.store.create(subscription_id, now_us)
                continue
            if self._remove_expired(subscription_id, refusal.slots, now_us):
                continue
            pause = min(poll, (last_us - now_us) / MICROSECONDS)
            if pause <= 0:
                return False
            self.clock.sleep(pause * random.uniform(1.0, 1.2))  # noqa: S311 (jitter, not security)
            poll = min(MAX_POLL_SECONDS, poll * 2)
        return False

    def _created(self, subscription_id: str, refusal: Refusal, now_us: int) -> bool:
        """Note when the next turn is; whether the item was missing (and is now created: ask again)."""
        self._next_start[subscription_id] = refusal.next_start_us
        if refusal.missing:
            self.store.create(subscription_id, now_us)
        return refusal.missing

    def _claim(self, owner: str, throttling: Throttling, now_us: int) -> Claim:
        return Claim(
            owner=owner,
            now_us=now_us,
            max_concurrent=throttling.max_concurrent_requests,
            slot_expires_us=now_us + int(self.slot_seconds * MICROSECONDS),
        )

    def _remove_expired(self, subscription_id: str, slots: dict[str, int], now_us: int) -> bool:
        """Remove the claims of callers that never released them; whether there were any."""
        expired = {holder: until for holder, until in slots.items() if until <= now_us}
        if expired:
            self.store.remove_expired(subscription_id, expired)
        return bool(expired)

    def release(self, turn: Turn) -> None:
        """Free the slot. A failed release is logged, not raised: Zoho has answered by now (a POST may have
        created something), and the slot expires on its own."""
        try:
            self.store.release(turn.subscription_id, turn.owner)
        except ServiceUnavailable:
            logger.warning(
                "slot not released; it expires on its own", extra={"subscription_id": turn.subscription_id}
            )

    def slow_down(self, subscription_id: str, seconds: float) -> None:
        """Start no call for this subscription within ``seconds`` (Zoho answered too many requests)."""
        until = int((self.clock.time() + seconds) * MICROSECONDS)
        self.store.push_back(subscription_id, until)
        self._next_start[subscription_id] = until

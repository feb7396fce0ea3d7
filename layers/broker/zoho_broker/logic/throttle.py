"""A subscription's throttling, honoured by every Lambda at once: at most ``max_concurrent_requests``
calls under way and calls started at least 60 s / ``requests_per_minute`` apart, so no 60-second window
ever holds more than ``requests_per_minute`` starts. Over a limit the caller gets Throttled (429 with
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
from zoho_broker.store.throttle import Claim, ThrottleStore

logger = Logger(child=True)

MICROSECONDS = 1_000_000
# Polling for a free slot while waiting: from this, doubling up to the cap, with jitter.
FIRST_POLL_SECONDS = 0.02
MAX_POLL_SECONDS = 0.1
MAX_TURNOVER_POLL_SECONDS = 2.0
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
    """A call's claim: its slot (released when the call ends) and when it started."""

    subscription_id: str
    owner: str
    start_us: int


class Throttle:
    """One per Lambda instance; remembers per subscription whether calls were queued ahead."""

    def __init__(self, store: ThrottleStore, clock: Clock, *, slot_seconds: float) -> None:
        self.store = store
        self.clock = clock
        self.slot_seconds = slot_seconds
        self._next_start: dict[str, int] = {}

    def acquire(self, subscription_id: str, throttling: Throttling, *, wait_seconds: float) -> Turn:
        """A slot and a start time, waiting for them at most ``wait_seconds``; sleeps until the start."""
        owner = uuid.uuid4().hex
        interval_us = math.ceil(60 * MICROSECONDS / throttling.requests_per_minute)
        deadline = self.clock.monotonic() + wait_seconds
        poll = FIRST_POLL_SECONDS
        for _ in range(MAX_ATTEMPTS):
            now_us = int(self.clock.time() * MICROSECONDS)
            remaining = max(0.0, deadline - self.clock.monotonic())
            claim = Claim(
                owner=owner,
                now_us=now_us,
                interval_us=interval_us,
                max_concurrent=throttling.max_concurrent_requests,
                latest_start_us=now_us + int(remaining * MICROSECONDS),
                slot_expires_us=now_us + int((self.slot_seconds + remaining) * MICROSECONDS),
                idle=self._next_start.get(subscription_id, 0) <= now_us,
            )
            outcome = self.store.claim(subscription_id, claim)
            if isinstance(outcome, int):
                self._next_start[subscription_id] = outcome + interval_us
                self.clock.sleep(max(0.0, (outcome - int(self.clock.time() * MICROSECONDS)) / MICROSECONDS))
                return Turn(subscription_id, owner, outcome)
            self._next_start[subscription_id] = outcome.next_start_us
            if outcome.missing:
                self.store.create(subscription_id, now_us)
                continue
            if len(outcome.slots) >= throttling.max_concurrent_requests:
                expired = {holder: until for holder, until in outcome.slots.items() if until <= now_us}
                if expired:
                    self.store.remove_expired(subscription_id, expired)
                    continue
                retry_after: float = CONCURRENCY_RETRY_SECONDS
                reason = f"{throttling.max_concurrent_requests} calls are under way"
                # A slot frees when a call ends; calls start one interval apart, so polling much more
                # often than the slots turn over only adds conditional writes that fail.
                turnover = interval_us / MICROSECONDS * throttling.max_concurrent_requests / 2
                pause = max(poll, min(MAX_TURNOVER_POLL_SECONDS, turnover))
                poll = min(MAX_POLL_SECONDS, poll * 2)
            elif outcome.next_start_us <= now_us or outcome.next_start_us <= claim.latest_start_us:
                continue  # the other form of the claim applies: the next attempt uses it
            else:
                # The turn lies beyond the wait; waiting longer cannot bring it closer.
                raise Throttled(
                    "Too many calls for this subscription: the rate of "
                    f"{throttling.requests_per_minute} calls a minute is used up.",
                    retry_after=(outcome.next_start_us - now_us) / MICROSECONDS,
                )
            if self.clock.monotonic() + pause > deadline:
                raise Throttled(f"Too many calls for this subscription: {reason}.", retry_after=retry_after)
            self.clock.sleep(pause * random.uniform(1.0, 1.2))  # noqa: S311 (jitter, not security)
        raise Throttled("Too many calls for this subscription; retry shortly.", retry_after=1)

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

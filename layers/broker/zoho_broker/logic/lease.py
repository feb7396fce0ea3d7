"""The per-subscription lease, shared by the scheduled refresher, on-demand refreshes, the callback
and revoke, so two of them never write one subscription's tokens at once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from zoho_broker.errors import Busy, NotFound
from zoho_broker.models import Subscription
from zoho_broker.services import Services

# Longer than a refresh can take (Zoho timeout plus two AWS writes), short enough to recover from a crash.
LEASE_SECONDS = 60
POLL_SECONDS = 0.2


@dataclass
class Lease:
    owner: str
    subscription: Subscription
    released: bool = False


@contextmanager
def held(
    services: Services, subscription_id: str, *, purpose: str, wait_seconds: float = 0.0
) -> Iterator[Lease]:
    """Hold the lease for the block; raise Busy if it stays taken for ``wait_seconds``.

    A store write that finishes the work releases the lease in the same request (and sets
    ``released``); otherwise it is released on the way out.
    """
    owner = f"{purpose}:{uuid.uuid4().hex}"
    clock = services.clock
    deadline = clock.monotonic() + wait_seconds
    while True:
        subscription = services.subscriptions.acquire_lease(
            subscription_id, owner=owner, now=int(clock.time()), seconds=LEASE_SECONDS
        )
        if subscription is not None:
            break
        if services.subscriptions.get(subscription_id) is None:
            raise NotFound(f"No subscription with id {subscription_id!r}.")
        if clock.monotonic() >= deadline:
            raise Busy("Another refresh of this subscription is under way; try again in a few seconds.")
        clock.sleep(POLL_SECONDS)
    lease = Lease(owner=owner, subscription=subscription)
    try:
        yield lease
    finally:
        if not lease.released:
            services.subscriptions.release_lease(subscription_id, owner=owner)

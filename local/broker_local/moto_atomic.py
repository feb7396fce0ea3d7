"""DynamoDB applies each request atomically; moto does not.

Moto checks a ``ConditionExpression`` and then writes, with nothing in between to stop a second
thread doing the same: two conditional updates racing for the same item (two refreshers taking one
lease) can both succeed, which real DynamoDB never allows. The local runner and the tests serve
requests from several threads, so they serialise moto's DynamoDB requests, as DynamoDB's own
per-item atomicity would.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from moto.dynamodb.responses import DynamoHandler

_LOCK = threading.RLock()


def make_dynamodb_atomic() -> None:
    """Wrap moto's DynamoDB request handling in one lock (idempotent)."""
    original = DynamoHandler.call_action
    if getattr(original, "_broker_atomic", False):
        return

    @functools.wraps(original)
    def call_action(self: DynamoHandler, *args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return original(self, *args, **kwargs)

    call_action._broker_atomic = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]

"""The broker's EventBridge events, caught locally so the console can show the recent ones.

Deployed, a team routes `source: zoho-broker` events with a rule (docs/operations.md). Locally the runner
does the same in moto: a rule on the stack's bus sends them to a queue of the runner's own, and a thread
keeps the last few. Events carry subscription ids and reasons, never a token or a secret.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import boto3

from broker_local.template import Stack

log = logging.getLogger("broker_local.events")

SOURCE = "zoho-broker"
KEPT = 20


@dataclass(frozen=True)
class CaughtEvent:
    """One event as EventBridge delivered it."""

    time: str
    detail_type: str
    detail: dict[str, Any]


class EventFeed:
    """A rule and a queue in moto, and a thread moving what arrives into a short in-memory list."""

    def __init__(self, stack: Stack, bus_name: str, *, kept: int = KEPT) -> None:
        self._name = f"{stack.name}-console-events"
        self._bus = bus_name
        self._events: deque[CaughtEvent] = deque(maxlen=kept)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queue_url = ""

    def start(self) -> EventFeed:
        sqs, events = boto3.client("sqs"), boto3.client("events")
        self._queue_url = sqs.create_queue(QueueName=self._name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name=self._name, EventBusName=self._bus, EventPattern=json.dumps({"source": [SOURCE]})
        )
        events.put_targets(Rule=self._name, EventBusName=self._bus, Targets=[{"Id": "console", "Arn": arn}])
        self._thread = threading.Thread(target=self._poll, name="local-event-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def recent(self) -> list[CaughtEvent]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._events))

    def drain(self) -> None:
        """Take in whatever has arrived now (tests, and the console before it shows the list)."""
        while self._receive(wait=0):
            pass

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self._receive(wait=1)
            except Exception:
                log.exception("reading the console's event queue failed")
                self._stop.wait(1)

    def _receive(self, *, wait: int) -> int:
        sqs = boto3.client("sqs")
        messages = sqs.receive_message(
            QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
        ).get("Messages", [])
        for message in messages:
            body = json.loads(message["Body"])
            caught = CaughtEvent(
                time=str(body.get("time", "")),
                detail_type=str(body.get("detail-type", "")),
                detail=dict(body.get("detail") or {}),
            )
            with self._lock:
                self._events.append(caught)
            sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

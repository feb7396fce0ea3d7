"""What EventBridge and Lambda's SQS poller do for a deployed stack, done locally: run the template's
scheduled functions every few seconds and feed its queues to their functions in batches."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from broker_local.functions import function_entry, queue_sources, schedules
from broker_local.gateway import LambdaContext, import_handler
from broker_local.template import ACCOUNT_ID, Stack

log = logging.getLogger("broker_local.scheduler")


def scheduled_event(function_id: str, region: str) -> dict[str, Any]:
    """The event EventBridge sends a scheduled function."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{ACCOUNT_ID}:rule/{function_id}-schedule"],
        "detail": {},
    }


def sqs_event(messages: Sequence[Mapping[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS poller sends: one record per received message."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


class LocalScheduler:
    """Background threads: one per schedule (at ``interval_seconds``) and one poller per queue."""

    def __init__(
        self, template: dict[str, Any], stack: Stack, project_root: Path, *, interval_seconds: float
    ) -> None:
        self._template = template
        self._stack = stack
        self._root = project_root
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # one invocation of a function at a time, as in one Lambda instance
        self._handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {}

    def start(self) -> LocalScheduler:
        for schedule in schedules(self._template, self._stack):
            if schedule.enabled:
                self._spawn(self._run_schedule, schedule.function_id)
        for source in queue_sources(self._template, self._stack):
            self._spawn(self._poll_queue, source.function_id, source.queue_url, source.batch_size)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def run_schedules_once(self) -> list[Any]:
        """Invoke every scheduled function now (the runner's and the tests' 'tick')."""
        return [
            self._invoke(s.function_id, scheduled_event(s.function_id, self._stack.region))
            for s in schedules(self._template, self._stack)
            if s.enabled
        ]

    def drain_queues_once(self) -> int:
        """Feed every queue's waiting messages to its function; returns how many were handled."""
        handled = 0
        for source in queue_sources(self._template, self._stack):
            while (
                count := self._deliver(source.function_id, source.queue_url, source.batch_size, wait=0)
            ) > 0:
                handled += count
        return handled

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=f"local-{args[0]}")
        thread.start()
        self._threads.append(thread)

    def _run_schedule(self, function_id: str) -> None:
        while not self._stop.wait(self._interval):
            try:
                result = self._invoke(function_id, scheduled_event(function_id, self._stack.region))
                log.info("%s ran: %s", function_id, result)
            except Exception:
                log.exception("%s failed", function_id)

    def _poll_queue(self, function_id: str, queue_url: str, batch_size: int) -> None:
        while not self._stop.is_set():
            try:
                self._deliver(function_id, queue_url, batch_size, wait=1)
            except Exception:
                log.exception("%s failed", function_id)
                time.sleep(1)

    def _deliver(self, function_id: str, queue_url: str, batch_size: int, *, wait: int) -> int:
        sqs = boto3.client("sqs")
        answer = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, batch_size),
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            return 0
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        result = self._invoke(function_id, sqs_event(messages, queue_arn, self._stack.region))
        failed = {item["itemIdentifier"] for item in (result or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        # Failed ones become visible again after the visibility timeout, then go to the DLQ, as deployed.
        return len(messages)

    def _invoke(self, function_id: str, event: dict[str, Any]) -> Any:
        with self._lock:
            handler = self._handlers.get(function_id)
            if handler is None:
                handler = import_handler(function_entry(self._template, function_id), self._root)
                self._handlers[function_id] = handler
            return handler(event, LambdaContext.for_function(function_id))

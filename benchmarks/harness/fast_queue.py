"""The refresh queue, answered at botocore's before-call hook (harness/__init__.py says why not moto's)."""

from __future__ import annotations

import hashlib
import heapq
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class _QueuedMessage:
    message_id: str
    body: str
    md5: str
    sent_at_ms: int
    receive_count: int = 0
    first_received_at_ms: int = 0
    receipt_handle: str = ""


class FastQueue:
    """One SQS standard queue, answering its calls at botocore's before-call hook."""

    def __init__(self, url: str, arn: str, *, visibility_timeout: int, max_receive_count: int) -> None:
        self.url = url
        self.arn = arn
        self._visibility_timeout = visibility_timeout
        self._max_receive_count = max_receive_count
        self._lock = threading.Lock()
        self._visible: deque[_QueuedMessage] = deque()
        self._in_flight: dict[str, _QueuedMessage] = {}  # by the receipt handle of the latest receive
        self._timeouts: list[tuple[float, str]] = []  # (visible again at, receipt handle), a heap
        self.dead_letters: list[_QueuedMessage] = []
        # The calls the refresh path makes (the broker sends in batches, the pollers delete in batches).
        self._operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "SendMessageBatch": self._send_batch,
            "ReceiveMessage": self._receive,
            "DeleteMessageBatch": self._delete_batch,
            "GetQueueAttributes": self._attributes,
        }

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build.sqs", self._keep_params, unique_id="fast-queue-1")
        client.meta.events.register("before-call.sqs", self._answer, unique_id="fast-queue-2")

    @staticmethod
    def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["fast_queue_params"] = params

    def _answer(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]] | None:
        from botocore.awsrequest import AWSResponse, HTTPHeaders

        params: dict[str, Any] = context.get("fast_queue_params") or {}
        operation = self._operations.get(str(model.name))
        if params.get("QueueUrl") != self.url or operation is None:
            return None  # another queue, or a call the refresh path never makes: moto answers
        with self._lock:
            parsed = operation(params)
        parsed["ResponseMetadata"] = {
            "RequestId": str(uuid.uuid4()),
            "HTTPStatusCode": 200,
            "RetryAttempts": 0,
        }
        return AWSResponse(self.url, 200, HTTPHeaders(), None), parsed

    def purge(self) -> None:
        with self._lock:
            self._visible.clear()
            self._in_flight.clear()
            self._timeouts.clear()

    def _enqueue(self, body: str) -> _QueuedMessage:
        message = _QueuedMessage(
            message_id=str(uuid.uuid4()),
            body=body,
            md5=hashlib.md5(body.encode()).hexdigest(),  # what SQS reports, not a security measure
            sent_at_ms=int(time.time() * 1000),
        )
        self._visible.append(message)
        return message

    def _send_batch(self, params: dict[str, Any]) -> dict[str, Any]:
        successful = []
        for entry in params["Entries"]:
            message = self._enqueue(entry["MessageBody"])
            successful.append(
                {"Id": entry["Id"], "MessageId": message.message_id, "MD5OfMessageBody": message.md5}
            )
        return {"Successful": successful, "Failed": []}

    def _expire_timeouts(self, now: float) -> None:
        """Messages whose visibility timeout ran out are visible again, or dead letters after maxReceiveCount."""
        while self._timeouts and self._timeouts[0][0] <= now:
            _, handle = heapq.heappop(self._timeouts)
            message = self._in_flight.pop(handle, None)
            if message is None:
                continue  # deleted in time
            if message.receive_count >= self._max_receive_count:
                self.dead_letters.append(message)
            else:
                self._visible.append(message)

    def _receive(self, params: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        self._expire_timeouts(now)
        timeout = int(params.get("VisibilityTimeout", self._visibility_timeout))
        received: list[dict[str, Any]] = []
        while self._visible and len(received) < int(params.get("MaxNumberOfMessages", 1)):
            message = self._visible.popleft()
            message.receive_count += 1
            message.first_received_at_ms = message.first_received_at_ms or int(now * 1000)
            message.receipt_handle = secrets.token_urlsafe(48)
            self._in_flight[message.receipt_handle] = message
            heapq.heappush(self._timeouts, (now + timeout, message.receipt_handle))
            received.append(
                {
                    "MessageId": message.message_id,
                    "ReceiptHandle": message.receipt_handle,
                    "MD5OfBody": message.md5,
                    "Body": message.body,
                    # All of them: the pollers ask for All, as Lambda's event source mapping does.
                    "Attributes": {
                        "ApproximateReceiveCount": str(message.receive_count),
                        "SentTimestamp": str(message.sent_at_ms),
                        "ApproximateFirstReceiveTimestamp": str(message.first_received_at_ms),
                        "SenderId": "AIDABENCHMARK",
                    },
                }
            )
        return {"Messages": received} if received else {}

    def _delete_batch(self, params: dict[str, Any]) -> dict[str, Any]:
        successful, failed = [], []
        for entry in params["Entries"]:
            if self._in_flight.pop(entry["ReceiptHandle"], None) is not None:
                successful.append({"Id": entry["Id"]})
            else:
                failed.append(
                    {
                        "Id": entry["Id"],
                        "SenderFault": True,
                        "Code": "ReceiptHandleIsInvalid",
                        "Message": "stale",
                    }
                )
        return {"Successful": successful, "Failed": failed}

    def _attributes(self, params: dict[str, Any]) -> dict[str, Any]:
        self._expire_timeouts(time.time())
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(len(self._visible)),
                "ApproximateNumberOfMessagesNotVisible": str(len(self._in_flight)),
                "ApproximateNumberOfMessagesDelayed": "0",
                "QueueArn": self.arn,
            }
        }

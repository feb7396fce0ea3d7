"""The SQS queue that fans due refreshes out to the worker function."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from zoho_broker.store import aws

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SQS_BATCH = 10  # SendMessageBatch's maximum


class RefreshQueue:
    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        if not queue_url:
            raise RuntimeError("BROKER_REFRESH_QUEUE_URL is not set; the refresher cannot fan out.")
        self._url = queue_url
        self._client = client or aws.sqs()

    def send(self, subscription_ids: Iterable[str]) -> int:
        """Queue one message per subscription; returns how many were queued."""
        sent = 0
        batch: list[str] = []
        for subscription_id in subscription_ids:
            batch.append(subscription_id)
            if len(batch) == SQS_BATCH:
                sent += self._send_batch(batch)
                batch = []
        if batch:
            sent += self._send_batch(batch)
        return sent

    def _send_batch(self, batch: list[str]) -> int:
        answer = self._client.send_message_batch(
            QueueUrl=self._url,
            Entries=[
                {"Id": str(index), "MessageBody": json.dumps({"subscription_id": subscription_id})}
                for index, subscription_id in enumerate(batch)
            ],
        )
        failed = answer.get("Failed", [])
        if failed:
            raise RuntimeError(f"SQS refused {len(failed)} of {len(batch)} refresh messages")
        return len(batch)

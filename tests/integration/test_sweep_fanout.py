"""The scheduled sweep at scale: it reads every page of the refresh index and queues the due
subscriptions in SendMessageBatch calls of ten. AWS in moto."""

from __future__ import annotations

import time

import boto3
import httpx
import pytest
from aws_calls import counted_calls, dynamodb_pages_of
from flow import create_subscription

from broker_local.template import Stack
from zoho_broker.logic import refresh
from zoho_broker.services import Services
from zoho_broker.store import aws

DUE = 25


def _due_now(services: Services, subscription_id: str) -> None:
    boto3.client("dynamodb").update_item(
        TableName=services.settings.subscriptions_table,
        Key={"pk": {"S": f"sub#{subscription_id}"}},
        UpdateExpression="SET refresh_partition = :p, refresh_due_at = :due",
        ExpressionAttributeValues={":p": {"S": "due"}, ":due": {"N": str(int(time.time()) - 60)}},
    )


def test_a_sweep_reads_every_page_of_the_index_and_queues_in_batches_of_ten(
    admin: httpx.Client, services: Services, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    due = {create_subscription(admin, name=f"Due {n}")["subscription_id"] for n in range(DUE)}
    for sid in due:
        _due_now(services, sid)
    create_subscription(admin, name="Not due")
    monkeypatch.setattr(services.settings, "refresh_inline_limit", 1)

    with dynamodb_pages_of(10, "Query"), counted_calls(aws.sqs(), "SendMessageBatch") as batches:
        summary = refresh.sweep(services)

    assert (summary.due, summary.queued) == (DUE, DUE)
    assert [len(batch["Entries"]) for batch in batches] == [10, 10, 5]
    queued = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.physical_ids["RefreshQueue"], AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert queued["Attributes"]["ApproximateNumberOfMessages"] == str(DUE)

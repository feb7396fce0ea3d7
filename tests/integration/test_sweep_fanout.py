"""The scheduled sweep at scale: it reads every page of the refresh index and queues the due
subscriptions in SendMessageBatch calls of ten. AWS in moto."""

from __future__ import annotations

import logging
import time
from typing import Any

import boto3
import httpx
import pytest
from aws_calls import counted_calls, dynamodb_pages_of, on_call
from flow import create_subscription, logged_once

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
    admin: httpx.Client,
    services: Services,
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
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
    line = logged_once(caplog, "refresh sweep")  # the operator's count
    assert (line["due"], line["queued"]) == (DUE, DUE)


def test_a_sweep_whose_batch_sqs_partly_refuses_fails_so_lambda_runs_it_again(
    admin: httpx.Client, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given more due subscriptions than the sweep refreshes itself, and SQS refusing one entry of a batch
    for n in range(3):
        _due_now(services, create_subscription(admin, name=f"Due {n}")["subscription_id"])
    monkeypatch.setattr(services.settings, "refresh_inline_limit", 1)

    def one_refused(params: dict[str, Any], **_: Any) -> None:
        params["Entries"][1]["DelaySeconds"] = 901  # over SQS's 900: that entry alone is refused

    # Then the sweep fails rather than count the refused one as queued: the invocation errs (the
    # function-errors alarm counts it), Lambda retries it, and each later sweep queues what is still due
    with (
        on_call(aws.sqs(), "SendMessageBatch", one_refused, name="one-refused"),
        pytest.raises(RuntimeError, match=r"^SQS refused 1 of 3 refresh messages$"),
    ):
        refresh.sweep(services)

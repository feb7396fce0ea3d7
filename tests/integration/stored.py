"""What the broker stored for a subscription, read and aged the way tests need it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from tests.held_secrets import held_secret
from zoho_broker.services import Services


def stored_secret(services: Services, subscription_id: str) -> dict[str, Any]:
    """The subscription's secret as Secrets Manager holds it."""
    return held_secret(services.settings.secret_prefix + subscription_id)


def edit_secret(services: Services, subscription_id: str, **changes: Any) -> None:
    """Rewrite fields of the stored secret by hand, as an operator's or a half-finished write would."""
    secret = services.secrets.get(subscription_id)
    assert secret is not None
    services.secrets.put(subscription_id, secret.model_copy(update=changes))


def expire_token(
    services: Services, subscription_id: str, *, seconds_left: int, now: float | None = None
) -> None:
    """Age the stored token: it expires ``seconds_left`` after ``now`` and its refresh is due at ``now``."""
    moment = time.time() if now is None else now
    expires = datetime.fromtimestamp(int(moment), UTC) + timedelta(seconds=seconds_left)
    edit_secret(services, subscription_id, access_token_expires_at=expires)
    boto3.client("dynamodb").update_item(
        TableName=services.settings.subscriptions_table,
        Key={"pk": {"S": f"sub#{subscription_id}"}},
        UpdateExpression="SET refresh_due_at = :due, access_token_expires_at = :expires",
        ExpressionAttributeValues={
            ":due": {"N": str(int(moment) - 1)},
            ":expires": {"S": expires.isoformat()},
        },
    )


def age_connection(services: Services, subscription_id: str, *, seconds: int) -> None:
    """The subscription connected (and last refreshed) ``seconds`` ago."""
    then = (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()
    boto3.client("dynamodb").update_item(
        TableName=services.settings.subscriptions_table,
        Key={"pk": {"S": f"sub#{subscription_id}"}},
        UpdateExpression="SET connected_at = :then, last_refreshed_at = :then",
        ExpressionAttributeValues={":then": {"S": then}},
    )


def expire_flow(flows_table: str, key: dict[str, Any], *, at: int | None = None) -> None:
    """A state's or connect link's flow item expires ``at`` (by default a second ago), though DynamoDB's
    TTL has not deleted it."""
    boto3.client("dynamodb").update_item(
        TableName=flows_table,
        Key=key,
        UpdateExpression="SET expires_at = :at",
        ExpressionAttributeValues={":at": {"N": str(int(time.time()) - 1 if at is None else at)}},
    )


class Announcements:
    """Every event the broker puts on the default bus, delivered by an EventBridge rule to a queue."""

    def __init__(self) -> None:
        self._sqs = boto3.client("sqs")
        self._url = self._sqs.create_queue(QueueName="announcements")["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])["Attributes"]
        events = boto3.client("events")
        events.put_rule(Name="broker-announcements", EventPattern=json.dumps({"source": ["zoho-broker"]}))
        events.put_targets(Rule="broker-announcements", Targets=[{"Id": "queue", "Arn": arn["QueueArn"]}])
        self.received: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        """All events so far (in order of arrival)."""
        answer = self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10)
        for message in answer.get("Messages", []):
            self.received.append(json.loads(message["Body"]))
            self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])
        return self.received


def take_over_lease(services: Services, subscription_id: str) -> None:
    """Another refresher holds the subscription's lease now (this caller's ran out meanwhile)."""
    boto3.client("dynamodb").update_item(
        TableName=services.settings.subscriptions_table,
        Key={"pk": {"S": f"sub#{subscription_id}"}},
        UpdateExpression="SET lease_owner = :other",
        ExpressionAttributeValues={":other": {"S": "refresh:someone-else"}},
    )

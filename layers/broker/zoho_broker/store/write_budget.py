"""The secret-write budget's counters in DynamoDB: one item per one-second window, expired by TTL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from zoho_broker.errors import ServiceUnavailable
from zoho_broker.store import aws

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

WINDOW_PREFIX = "secret-writes#"
# DynamoDB's TTL deletes within days, not seconds; nothing reads a window after it has passed.
KEEP_SECONDS = 3600


class WriteBudgetStore:
    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client = client or aws.dynamodb()

    def take(self, window: int, limit: int) -> bool:
        """One conditional increment: at most ``limit`` succeed per window, however many workers ask."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"{WINDOW_PREFIX}{window}"}},
                UpdateExpression="ADD writes :one SET expires_at = if_not_exists(expires_at, :expires)",
                ConditionExpression="attribute_not_exists(writes) OR writes < :limit",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(limit)},
                    ":expires": {"N": str(window + KEEP_SECONDS)},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            if aws.is_unavailable(error):
                raise ServiceUnavailable("The secret-write budget could not be read.") from error
            raise
        except Exception as error:
            if aws.is_unavailable(error):
                raise ServiceUnavailable("The secret-write budget could not be read.") from error
            raise
        return True

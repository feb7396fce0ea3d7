"""Connect links and states: short-lived items consumed atomically (a conditional delete)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from zoho_broker.models import ConnectLinkRecord, StateRecord
from zoho_broker.store import aws
from zoho_broker.store.items import from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

LINK_PREFIX = "link#"
STATE_PREFIX = "state#"


class FlowStore:
    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client = client or aws.dynamodb()

    def put_connect_link(self, link_hash: str, record: ConnectLinkRecord) -> None:
        self._put(LINK_PREFIX + link_hash, record.model_dump(mode="json"))

    def get_connect_link(self, link_hash: str) -> ConnectLinkRecord | None:
        answer = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": LINK_PREFIX + link_hash}}, ConsistentRead=True
        )
        item = answer.get("Item")
        return ConnectLinkRecord.model_validate(from_item(item)) if item else None

    def restore_connect_link(self, link_hash: str, record: ConnectLinkRecord) -> None:
        """Give back a link whose consent failed for a passing reason (no-op if it is there already)."""
        try:
            self.put_connect_link(link_hash, record)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def start_consent(self, link_hash: str, nonce: str, record: StateRecord) -> bool:
        """Use up the link and store the state in one transaction: both happen, or neither.

        False when the link was used (or deleted) in the meantime.
        """
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": {"pk": {"S": LINK_PREFIX + link_hash}},
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": to_item({"pk": STATE_PREFIX + nonce, **record.model_dump(mode="json")}),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as error:
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if error.response["Error"]["Code"] == "TransactionCanceledException" and reasons[:1] == [
                "ConditionalCheckFailed"
            ]:
                return False
            raise
        return True

    def consume_state(self, nonce: str) -> StateRecord | None:
        item = self._consume(STATE_PREFIX + nonce)
        return StateRecord.model_validate(item) if item else None

    def _put(self, pk: str, data: dict[str, Any]) -> None:
        self._client.put_item(
            TableName=self._table,
            Item=to_item({"pk": pk, **data}),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def _consume(self, pk: str) -> dict[str, Any] | None:
        """Delete and return the item, or None if it is gone: of two callers, exactly one wins."""
        try:
            answer = self._client.delete_item(
                TableName=self._table,
                Key={"pk": {"S": pk}},
                ConditionExpression="attribute_exists(pk)",
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        attributes = answer.get("Attributes")
        return from_item(attributes) if attributes else None

"""Subscriptions in DynamoDB, with a guard item per name so names stay unique."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from zoho_broker.errors import Conflict, InvalidInput, NotFound
from zoho_broker.models import ConnectionStatus, Subscription
from zoho_broker.store import aws
from zoho_broker.store.items import from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SUBSCRIPTION_PREFIX = "sub#"
NAME_PREFIX = "name#"


def _key(subscription_id: str) -> dict[str, Any]:
    return {"pk": {"S": SUBSCRIPTION_PREFIX + subscription_id}}


def _name_key(name: str) -> dict[str, Any]:
    # Names are unique regardless of case, as a person reads them.
    return {"pk": {"S": NAME_PREFIX + name.casefold()}}


class SubscriptionStore:
    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client = client or aws.dynamodb()

    def _item(self, subscription: Subscription) -> dict[str, Any]:
        data = subscription.model_dump(mode="json")
        data["pk"] = SUBSCRIPTION_PREFIX + subscription.subscription_id
        return to_item(data)

    def _name_guard(self, subscription: Subscription) -> dict[str, Any]:
        return {**_name_key(subscription.name), "subscription_id": {"S": subscription.subscription_id}}

    def create(self, subscription: Subscription) -> None:
        self._transact(
            [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": self._item(subscription),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": self._name_guard(subscription),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ],
            name=subscription.name,
        )

    def get(self, subscription_id: str) -> Subscription | None:
        answer = self._client.get_item(TableName=self._table, Key=_key(subscription_id), ConsistentRead=True)
        item = answer.get("Item")
        return Subscription.model_validate(from_item(item)) if item else None

    def require(self, subscription_id: str) -> Subscription:
        subscription = self.get(subscription_id)
        if subscription is None:
            raise NotFound(f"No subscription with id {subscription_id!r}.")
        return subscription

    def list_page(self, *, limit: int, cursor: str | None) -> tuple[list[Subscription], str | None]:
        """A page of subscriptions; the admin list is small enough that a filtered scan serves."""
        found: list[Subscription] = []
        start_key = _decode_cursor(cursor) if cursor else None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "FilterExpression": "begins_with(pk, :prefix)",
                "ExpressionAttributeValues": {":prefix": {"S": SUBSCRIPTION_PREFIX}},
                "Limit": limit,
            }
            if start_key:
                kwargs["ExclusiveStartKey"] = start_key
            answer = self._client.scan(**kwargs)
            for item in answer.get("Items", []):
                found.append(Subscription.model_validate(from_item(item)))
                if len(found) == limit:
                    last = {"pk": item["pk"]}
                    return found, _encode_cursor(last)
            start_key = answer.get("LastEvaluatedKey")
            if not start_key:
                return found, None

    def replace(self, subscription: Subscription, *, previous_name: str) -> None:
        put: dict[str, Any] = {
            "Put": {
                "TableName": self._table,
                "Item": self._item(subscription),
                "ConditionExpression": "attribute_exists(pk)",
            }
        }
        if previous_name.casefold() == subscription.name.casefold():
            actions = [put]
        else:
            actions = [
                put,
                {"Delete": {"TableName": self._table, "Key": _name_key(previous_name)}},
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": self._name_guard(subscription),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        self._transact(actions, name=subscription.name)

    def delete(self, subscription: Subscription) -> None:
        self._transact(
            [
                {"Delete": {"TableName": self._table, "Key": _key(subscription.subscription_id)}},
                {"Delete": {"TableName": self._table, "Key": _name_key(subscription.name)}},
            ],
            name=subscription.name,
        )

    def record_connection(
        self,
        subscription_id: str,
        *,
        data_centre: str,
        api_domain: str | None,
        access_token_expires_at: datetime,
        connected_at: datetime,
    ) -> None:
        """Mark the subscription connected; fails with NotFound if it was deleted meanwhile."""
        values = to_item(
            {
                ":status": ConnectionStatus.CONNECTED.value,
                ":dc": data_centre,
                ":domain": api_domain or "",
                ":expires": access_token_expires_at.isoformat(),
                ":connected": connected_at.isoformat(),
            }
        )
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_key(subscription_id),
                UpdateExpression=(
                    "SET #status = :status, data_centre = :dc, api_domain = :domain, "
                    "access_token_expires_at = :expires, connected_at = :connected, "
                    "updated_at = :connected REMOVE last_error"
                ),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise NotFound("The subscription was deleted while it was being connected.") from error
            raise

    def _transact(self, actions: list[dict[str, Any]], *, name: str) -> None:
        try:
            self._client.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
            if len(reasons) > 1 and reasons[-1] == "ConditionalCheckFailed" and actions[-1].get("Put"):
                raise Conflict(f"A subscription named {name!r} already exists.") from error
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise NotFound("The subscription does not exist (it may have been deleted).") from error
            raise


def _encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if isinstance(key, dict) and isinstance(key.get("pk", {}).get("S"), str):
            return key
    except (ValueError, AttributeError):
        pass
    raise InvalidInput("The cursor is not one this API returned.")

"""Integrations in DynamoDB (items "integration#<id>" of the subscriptions table), over the built-ins.

The packaged catalogue is the starting content and needs no step on a new stack. The first edit of a
built-in integration stores a copy of it; from then on the stored integration wins as a whole (a
later release's changes to that built-in do not reach it). Every write is conditional on the revision
it read, so two operators' concurrent edits cannot silently overwrite each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from zoho_broker.catalogue import Catalogue, Integration, StoredIntegration
from zoho_broker.errors import Conflict, NotFound
from zoho_broker.store import aws
from zoho_broker.store.items import from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

INTEGRATION_PREFIX = "integration#"


def _key(integration_id: str) -> dict[str, Any]:
    return {"pk": {"S": INTEGRATION_PREFIX + integration_id}}


class IntegrationStore:
    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client = client or aws.dynamodb()

    def get(self, integration_id: str) -> StoredIntegration | None:
        answer = self._client.get_item(TableName=self._table, Key=_key(integration_id), ConsistentRead=True)
        item = answer.get("Item")
        return _parse(item) if item else None

    def list(self) -> list[StoredIntegration]:
        """Every stored integration; an operator's catalogue is small, so a filtered scan serves."""
        found: list[StoredIntegration] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "begins_with(pk, :prefix)",
            "ExpressionAttributeValues": {":prefix": {"S": INTEGRATION_PREFIX}},
            "ConsistentRead": True,
        }
        while True:
            answer = self._client.scan(**kwargs)
            found += [_parse(item) for item in answer["Items"]]
            if "LastEvaluatedKey" not in answer:
                return sorted(found, key=lambda integration: integration.id)
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def put(self, integration: StoredIntegration, *, read_revision: int) -> StoredIntegration:
        """Store it as revision ``read_revision + 1``, only if nobody wrote since ``read_revision``."""
        written = integration.model_copy(update={"revision": read_revision + 1})
        data = written.model_dump(mode="json")
        data["pk"] = INTEGRATION_PREFIX + integration.id
        try:
            self._client.put_item(TableName=self._table, Item=to_item(data), **_unchanged(read_revision))
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise Conflict(
                    f"The integration {integration.id!r} was changed by someone else meanwhile: "
                    "read it again and retry."
                ) from error
            raise
        return written

    def unchanged_check(self, integration_id: str, revision: int) -> dict[str, Any]:
        """A transaction item that fails when the integration was written since ``revision``."""
        return {
            "ConditionCheck": {"TableName": self._table, "Key": _key(integration_id), **_unchanged(revision)}
        }


def _unchanged(revision: int) -> dict[str, Any]:
    if revision == 0:
        return {"ConditionExpression": "attribute_not_exists(pk)"}
    return {
        "ConditionExpression": "revision = :revision",
        "ExpressionAttributeValues": {":revision": {"N": str(revision)}},
    }


def _parse(item: dict[str, Any]) -> StoredIntegration:
    data = from_item(item)
    del data["pk"]  # the table's key, not a field
    return StoredIntegration.model_validate(data)


class IntegrationCatalogue:
    """The catalogue as the broker uses it: the built-ins, each replaced by its stored copy if any."""

    def __init__(self, built_in: Catalogue, store: IntegrationStore) -> None:
        self.built_in = built_in
        self.store = store

    def find_built_in(self, integration_id: str) -> Integration | None:
        return self.built_in.find(integration_id)

    def current(self, integration_id: str) -> StoredIntegration:
        """The integration with the revision to name when writing it (0: not stored yet)."""
        stored = self.store.get(integration_id)
        if stored is not None:
            return stored
        built_in = self.find_built_in(integration_id)
        if built_in is None:
            known = ", ".join(i.id for i in self.list())
            raise NotFound(f"Unknown integration {integration_id!r} (known: {known}).")
        return StoredIntegration.model_validate(built_in.model_dump())

    def get(self, integration_id: str) -> Integration:
        return self.current(integration_id).as_integration()

    def list(self) -> list[StoredIntegration]:
        stored: dict[str, StoredIntegration | None] = {i.id: i for i in self.store.list()}
        merged = [
            stored.pop(i.id, None) or StoredIntegration.model_validate(i.model_dump())
            for i in self.built_in.integrations
        ]
        return merged + [i for i in stored.values() if i is not None]

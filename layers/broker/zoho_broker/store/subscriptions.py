"""Subscriptions in DynamoDB: a guard item per name keeps names unique, a sparse index finds the
subscriptions due for a refresh, and a lease attribute lets one refresher at a time work on one."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from zoho_broker.errors import Conflict, InvalidInput, LeaseLost, NotFound
from zoho_broker.models import BoundOrganization, ConnectionStatus, Subscription
from zoho_broker.store import aws
from zoho_broker.store.items import from_item, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SUBSCRIPTION_PREFIX = "sub#"
NAME_PREFIX = "name#"
REFRESH_INDEX = "RefreshDue"
# One partition of the sparse index holds every subscription that has tokens to keep fresh.
REFRESH_PARTITION = "due"
# Fields an operator may change; the refresher's fields are never overwritten by an edit.
SETTINGS_FIELDS = (
    "name",
    "version",
    "client_id",
    "api_url",
    "throttling",
    "custom_fields",
    "reconnect_required",
    "updated_at",
)


def _key(subscription_id: str) -> dict[str, Any]:
    return {"pk": {"S": SUBSCRIPTION_PREFIX + subscription_id}}


def _name_key(name: str) -> dict[str, Any]:
    # Names are unique regardless of case, as a person reads them.
    return {"pk": {"S": NAME_PREFIX + name.casefold()}}


def _is_condition_failure(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class SubscriptionStore:
    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client = client or aws.dynamodb()

    # ----------------------------------------------------------------------------------------------
    # Operator's side: create, read, list, edit, delete.

    def _item(self, subscription: Subscription) -> dict[str, Any]:
        data = subscription.model_dump(mode="json")
        data["pk"] = SUBSCRIPTION_PREFIX + subscription.subscription_id
        return to_item(data)

    def _name_guard(self, subscription: Subscription) -> dict[str, Any]:
        return {**_name_key(subscription.name), "subscription_id": {"S": subscription.subscription_id}}

    def create(self, subscription: Subscription, *, integration_check: dict[str, Any] | None = None) -> None:
        """``integration_check`` (IntegrationStore.unchanged_check) fails the creation when the integration
        changed since its version was read, so no subscription lands on a version being deleted."""
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
            integration_check=integration_check,
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
            for item in answer["Items"]:
                found.append(Subscription.model_validate(from_item(item)))
                if len(found) == limit:
                    return found, _encode_cursor({"pk": item["pk"]})
            start_key = answer.get("LastEvaluatedKey")
            if not start_key:
                return found, None

    def count_using(self, integration: str, version: str) -> int:
        """How many subscriptions name this version (strongly consistent: a delete relies on it)."""
        pages = self._client.get_paginator("scan").paginate(
            TableName=self._table,
            FilterExpression="begins_with(pk, :prefix) AND #integration = :integration AND #version = :version",
            ExpressionAttributeNames={"#integration": "integration", "#version": "version"},
            ExpressionAttributeValues=to_item(
                {":prefix": SUBSCRIPTION_PREFIX, ":integration": integration, ":version": version}
            ),
            Select="COUNT",
            ConsistentRead=True,
        )
        return sum(page["Count"] for page in pages)

    def update_settings(
        self,
        subscription: Subscription,
        *,
        previous_name: str,
        disconnect: bool,
        revoke_due_at: int | None,
        integration_check: dict[str, Any] | None,
        clear_organization: bool,
    ) -> None:
        """Write the operator's fields only; ``disconnect`` also drops the connection (new client id),
        ``clear_organization`` the organization binding (the next consent binds the one it connects).

        ``revoke_due_at`` keeps a disconnected subscription in the refresh index until the refresher
        has revoked the tokens it let go of.
        """
        data = to_item({f":{name}": value for name, value in subscription.model_dump(mode="json").items()})
        sets = [f"#{name} = :{name}" for name in SETTINGS_FIELDS]
        removes: list[str] = []
        values = {f":{name}": data[f":{name}"] for name in SETTINGS_FIELDS}
        names = {f"#{name}": name for name in SETTINGS_FIELDS}
        if disconnect:
            sets.append("#status = :not_connected")
            sets.append(_NEXT_GENERATION)
            values.update(
                to_item({":not_connected": ConnectionStatus.NOT_CONNECTED.value, **_GENERATION_VALUES})
            )
            names["#status"] = "status"
            removes = ["access_token_expires_at", "connected_at", "data_centre", "api_domain"]
            if revoke_due_at is None:
                removes += ["refresh_partition", "refresh_due_at"]
            else:
                sets.append("refresh_partition = :partition, refresh_due_at = :due")
                values.update(to_item({":partition": REFRESH_PARTITION, ":due": revoke_due_at}))
        if clear_organization:
            removes += ["organization", "organization_check_error"]
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        update: dict[str, Any] = {
            "Update": {
                "TableName": self._table,
                "Key": _key(subscription.subscription_id),
                "UpdateExpression": expression,
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }
        if previous_name.casefold() == subscription.name.casefold():
            actions = [update]
        else:
            actions = [
                update,
                {"Delete": {"TableName": self._table, "Key": _name_key(previous_name)}},
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": self._name_guard(subscription),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        self._transact(actions, name=subscription.name, integration_check=integration_check)

    def delete(self, subscription: Subscription) -> None:
        self._transact(
            [
                {"Delete": {"TableName": self._table, "Key": _key(subscription.subscription_id)}},
                {"Delete": {"TableName": self._table, "Key": _name_key(subscription.name)}},
            ],
            name=subscription.name,
        )

    # ----------------------------------------------------------------------------------------------
    # Connection state, written by the callback, the refresher and the revoke route.

    def record_connection(
        self,
        subscription_id: str,
        *,
        data_centre: str,
        api_domain: str | None,
        access_token_expires_at: datetime,
        connected_at: datetime,
        refresh_due_at: int,
        lease_owner: str,
        reconnected_from: str | None,
        organization: BoundOrganization | None = None,
        organization_check_error: str | None = None,
    ) -> ConnectionStatus:
        """Mark the subscription connected and release the lease; returns the status it had before.

        The generation moves on, which ends every other connect link and state of the subscription.
        ``reconnected_from`` is the data centre of a live connection this one replaces. A verified
        ``organization`` (re)binds it; a failed check's reason is kept beside the binding as it was.
        """
        replaced = "reconnected_at = :now, reconnected_from = :from, " if reconnected_from else ""
        if organization is not None:
            replaced += "organization = :org, "
        if organization_check_error is not None:
            replaced += "organization_check_error = :org_error, "
        return self._record_tokens(
            subscription_id,
            lease_owner,
            # A person consented to the version's scopes as they are now: no reconnection is owed.
            f"data_centre = :dc, connected_at = :now, updated_at = :now, reconnect_required = :no, "
            f"{replaced}{_NEXT_GENERATION}, ",
            {
                ":dc": data_centre,
                ":from": reconnected_from,
                ":no": False,
                ":org": organization.model_dump(mode="json") if organization is not None else None,
                ":org_error": organization_check_error,
                **_GENERATION_VALUES,
            },
            extra_removes="" if organization_check_error is not None else ", organization_check_error",
            api_domain=api_domain,
            access_token_expires_at=access_token_expires_at,
            at=connected_at,
            refresh_due_at=refresh_due_at,
        )

    def record_refresh(
        self,
        subscription_id: str,
        *,
        api_domain: str | None,
        access_token_expires_at: datetime,
        refreshed_at: datetime,
        refresh_due_at: int,
        lease_owner: str,
    ) -> ConnectionStatus:
        return self._record_tokens(
            subscription_id,
            lease_owner,
            "",
            {},
            api_domain=api_domain,
            access_token_expires_at=access_token_expires_at,
            at=refreshed_at,
            refresh_due_at=refresh_due_at,
        )

    def _record_tokens(
        self,
        subscription_id: str,
        lease_owner: str,
        extra_sets: str,
        extra_values: dict[str, Any],
        *,
        extra_removes: str = "",
        api_domain: str | None,
        access_token_expires_at: datetime,
        at: datetime,
        refresh_due_at: int,
    ) -> ConnectionStatus:
        """New tokens are in the secret: connected, healthy, and due again before they expire."""
        return self._finish(
            subscription_id,
            lease_owner,
            f"SET {extra_sets}#status = :status, api_domain = :domain, access_token_expires_at = :expires, "
            "last_refreshed_at = :now, refresh_partition = :partition, refresh_due_at = :due, "
            f"consecutive_failures = :zero, failing_days = :zero REMOVE last_error, last_failure_day{extra_removes}",
            {
                **extra_values,
                ":status": ConnectionStatus.CONNECTED.value,
                ":domain": api_domain or "",
                ":expires": access_token_expires_at.isoformat(),
                ":now": at.isoformat(),
                ":partition": REFRESH_PARTITION,
                ":due": refresh_due_at,
                ":zero": 0,
            },
        )

    def record_failure(
        self,
        subscription_id: str,
        *,
        error: str,
        refresh_due_at: int,
        consecutive_failures: int,
        failing_days: int,
        failure_day: str,
        lease_owner: str,
    ) -> ConnectionStatus:
        return self._record_retry(
            subscription_id,
            lease_owner,
            {":error": error, ":due": refresh_due_at, ":failures": consecutive_failures},
            ", failing_days = :days, last_failure_day = :day",
            {":days": failing_days, ":day": failure_day},
        )

    def record_deferral(
        self,
        subscription_id: str,
        *,
        error: str,
        refresh_due_at: int,
        consecutive_failures: int,
        lease_owner: str,
    ) -> ConnectionStatus:
        """Come back soon; unlike a failure, no failing day is counted."""
        return self._record_retry(
            subscription_id,
            lease_owner,
            {":error": error, ":due": refresh_due_at, ":failures": consecutive_failures},
        )

    def _record_retry(
        self,
        subscription_id: str,
        lease_owner: str,
        values: dict[str, Any],
        extra_sets: str = "",
        extra_values: dict[str, Any] | None = None,
    ) -> ConnectionStatus:
        return self._finish(
            subscription_id,
            lease_owner,
            "SET last_error = :error, refresh_partition = :partition, refresh_due_at = :due, "
            f"consecutive_failures = :failures{extra_sets}",
            {**values, ":partition": REFRESH_PARTITION, **(extra_values or {})},
        )

    def record_needs_reauthentication(
        self, subscription_id: str, *, error: str, lease_owner: str
    ) -> ConnectionStatus:
        """Out of the refresh index: nothing more to try until a person connects it again."""
        return self._finish(
            subscription_id,
            lease_owner,
            "SET #status = :status, last_error = :error REMOVE refresh_partition, refresh_due_at",
            {":status": ConnectionStatus.NEEDS_REAUTHENTICATION.value, ":error": error},
        )

    def record_disconnection(
        self, subscription_id: str, *, at: datetime, lease_owner: str, revoke_due_at: int | None = None
    ) -> ConnectionStatus:
        """Not connected any more (and every outstanding link ended); ``revoke_due_at`` as in
        update_settings."""
        due = "refresh_partition = :partition, refresh_due_at = :due, " if revoke_due_at is not None else ""
        removes = "" if revoke_due_at is not None else "refresh_partition, refresh_due_at, "
        return self._finish(
            subscription_id,
            lease_owner,
            f"SET #status = :status, updated_at = :now, {due}{_NEXT_GENERATION} REMOVE {removes}"
            "access_token_expires_at, connected_at, last_error, data_centre, api_domain",
            {
                ":status": ConnectionStatus.NOT_CONNECTED.value,
                ":now": at.isoformat(),
                **(
                    {":partition": REFRESH_PARTITION, ":due": revoke_due_at}
                    if revoke_due_at is not None
                    else {}
                ),
                **_GENERATION_VALUES,
            },
        )

    def record_connect_failure(
        self, subscription_id: str, *, error: str, lease_owner: str, refresh_due_at: int | None = None
    ) -> None:
        """Why the last consent failed, for the operator; the connection itself is left as it was.

        ``refresh_due_at`` brings the refresher back (a refused consent's token awaits revocation).
        """
        if refresh_due_at is None:
            self._finish(subscription_id, lease_owner, "SET last_error = :error", {":error": error})
            return
        self._finish(
            subscription_id,
            lease_owner,
            "SET last_error = :error, refresh_partition = :partition, refresh_due_at = :due",
            {":error": error, ":partition": REFRESH_PARTITION, ":due": refresh_due_at},
        )

    def schedule(self, subscription_id: str, *, refresh_due_at: int | None, lease_owner: str) -> None:
        """Set (or clear) when the refresher comes back, and release the lease."""
        if refresh_due_at is None:
            self._finish(subscription_id, lease_owner, "REMOVE refresh_partition, refresh_due_at", {})
        else:
            self._finish(
                subscription_id,
                lease_owner,
                "SET refresh_partition = :partition, refresh_due_at = :due",
                {":partition": REFRESH_PARTITION, ":due": refresh_due_at},
            )

    def _finish(
        self, subscription_id: str, lease_owner: str, expression: str, values: dict[str, Any]
    ) -> ConnectionStatus:
        """Apply an update and release the lease in the same write, only while we still hold it."""
        kwargs: dict[str, Any] = {}
        if "#status" in expression:
            kwargs["ExpressionAttributeNames"] = {"#status": "status"}
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key=_key(subscription_id),
                UpdateExpression=_with_lease_release(expression),
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues=to_item({**values, ":owner": lease_owner}),
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **kwargs,
            )
        except ClientError as error:
            if _is_condition_failure(error):
                if error.response.get("Item"):
                    raise LeaseLost(
                        "The lease ran out and another refresh took the subscription over; "
                        "try again in a few seconds."
                    ) from error
                raise NotFound("The subscription was deleted during the update.") from error
            raise
        previous = answer.get("Attributes", {}).get("status", {}).get("S")
        return ConnectionStatus(previous) if previous else ConnectionStatus.NOT_CONNECTED

    # ----------------------------------------------------------------------------------------------
    # The lease: one refresh (or connection, or revoke) at a time per subscription.

    def acquire_lease(
        self, subscription_id: str, *, owner: str, now: int, seconds: int
    ) -> Subscription | None:
        """Take the lease if it is free or expired; returns the subscription as it is now, or None."""
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key=_key(subscription_id),
                UpdateExpression="SET lease_owner = :owner, lease_expires_at = :until",
                ConditionExpression="attribute_exists(pk) AND "
                "(attribute_not_exists(lease_owner) OR lease_expires_at < :now)",
                ExpressionAttributeValues=to_item({":owner": owner, ":until": now + seconds, ":now": now}),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return None
            raise
        return Subscription.model_validate(from_item(answer["Attributes"]))

    def release_lease(self, subscription_id: str, *, owner: str) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_key(subscription_id),
                UpdateExpression="REMOVE lease_owner, lease_expires_at",
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as error:
            if not _is_condition_failure(error):  # someone else's now: not ours to release
                raise

    # ----------------------------------------------------------------------------------------------
    # The refresher's query.

    def due_for_refresh(self, *, due_before: int, page_size: int = 1000) -> Iterator[str]:
        """Ids of subscriptions whose refresh is due, oldest first, from the sparse index (no scan)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": REFRESH_INDEX,
            "KeyConditionExpression": "refresh_partition = :partition AND refresh_due_at <= :due",
            "ExpressionAttributeValues": to_item({":partition": REFRESH_PARTITION, ":due": due_before}),
            "Limit": page_size,
        }
        while True:
            answer = self._client.query(**kwargs)
            for item in answer["Items"]:
                yield item["pk"]["S"].removeprefix(SUBSCRIPTION_PREFIX)
            if "LastEvaluatedKey" not in answer:
                return
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def _transact(
        self, actions: list[dict[str, Any]], *, name: str, integration_check: dict[str, Any] | None = None
    ) -> None:
        items = [integration_check, *actions] if integration_check else actions
        try:
            self._client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
            if integration_check:
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    raise Conflict(
                        "The subscription's integration was changed meanwhile (a version edited or being "
                        "deleted): try again."
                    ) from error
                reasons = reasons[1:]
            if len(reasons) > 1 and reasons[-1] == "ConditionalCheckFailed" and actions[-1].get("Put"):
                raise Conflict(f"A subscription named {name!r} already exists.") from error
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise NotFound("The subscription does not exist (it may have been deleted).") from error
            raise


_NEXT_GENERATION = "connect_generation = if_not_exists(connect_generation, :zero_generation) + :one"
_GENERATION_VALUES = {":zero_generation": 0, ":one": 1}


def _with_lease_release(expression: str) -> str:
    if expression.startswith("REMOVE "):
        return expression.replace("REMOVE ", "REMOVE lease_owner, lease_expires_at, ", 1)
    if " REMOVE " in expression:
        return expression.replace(" REMOVE ", " REMOVE lease_owner, lease_expires_at, ", 1)
    return expression + " REMOVE lease_owner, lease_expires_at"


def _encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        # Exactly the shape list_page hands out, so nothing else reaches DynamoDB as a start key.
        if (
            isinstance(key, dict)
            and list(key) == ["pk"]
            and isinstance(key["pk"], dict)
            and list(key["pk"]) == ["S"]
            and isinstance(key["pk"]["S"], str)
            and key["pk"]["S"].startswith(SUBSCRIPTION_PREFIX)
        ):
            return key
    except (ValueError, AttributeError):
        pass
    raise InvalidInput("The cursor is not one this API returned.")

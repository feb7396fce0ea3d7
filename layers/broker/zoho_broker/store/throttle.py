"""The proxy's throttle in DynamoDB: one item per subscription ("throttle#<id>") shared by every Lambda.

The item holds ``slots`` (a map: the holder of each call under way, and when that claim expires) and
``next_start`` (microseconds since the epoch: the earliest moment the next call may start). One
conditional UpdateItem claims a slot and a start time together, so a call counts against both limits
or neither; releasing is one more UpdateItem. Claims of a caller that crashed expire and are removed by
the next caller who finds the slots full.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from zoho_broker.errors import ServiceUnavailable
from zoho_broker.store import aws

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PREFIX = "throttle#"
# An unused subscription's item goes away (TTL) a day after its last call; it is recreated on the next.
KEEP_SECONDS = 86_400


@dataclass(frozen=True)
class Claim:
    """One attempt: what the caller wants and what it knows."""

    owner: str
    now_us: int
    interval_us: int  # 60 s / requests_per_minute
    max_concurrent: int
    latest_start_us: int  # now + the wait the caller accepts
    slot_expires_us: int  # when the claim frees itself if never released
    idle: bool  # whether next_start is believed to have passed (picks the update's form)


@dataclass(frozen=True)
class Refusal:
    """Why a claim failed, from the item as it was."""

    missing: bool = False
    slots: dict[str, int] = field(default_factory=dict)
    next_start_us: int = 0


class ThrottleStore:
    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self._table = table_name
        self._client = client or aws.dynamodb()
        self.calls = 0  # DynamoDB requests made (the benchmark reports them per proxied call)

    def claim(self, subscription_id: str, claim: Claim) -> int | Refusal:
        """The start time granted (µs), or why not. The item must exist (see ``create``)."""
        names = {"#owner": claim.owner}
        values: dict[str, Any] = {
            ":slot": {"N": str(claim.slot_expires_us)},
            ":max": {"N": str(claim.max_concurrent)},
            ":now": {"N": str(claim.now_us)},
            ":expires": {"N": str(claim.now_us // 1_000_000 + KEEP_SECONDS)},
        }
        if claim.idle:
            # next_start has passed: this call starts now, the next one an interval later.
            update = "SET slots.#owner = :slot, next_start = :following, expires_at = :expires"
            condition = "attribute_exists(slots) AND size(slots) < :max AND next_start <= :now"
            values[":following"] = {"N": str(claim.now_us + claim.interval_us)}
        else:
            # Calls are queued ahead: this one starts at next_start, if that is soon enough for it.
            update = "SET slots.#owner = :slot, next_start = next_start + :interval, expires_at = :expires"
            condition = "attribute_exists(slots) AND size(slots) < :max AND next_start > :now AND next_start <= :latest"
            values[":latest"] = {"N": str(claim.latest_start_us)}
            values[":interval"] = {"N": str(claim.interval_us)}
        try:
            answer = self._update(
                subscription_id,
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _Refused as refused:
            return _refusal(refused.item)
        following = int(answer["Attributes"]["next_start"]["N"])
        return following - claim.interval_us

    def create(self, subscription_id: str, now_us: int) -> None:
        """The subscription's item, empty, unless another caller made it first."""
        try:
            self.calls += 1
            self._client.put_item(
                TableName=self._table,
                Item={
                    **_key(subscription_id),
                    "slots": {"M": {}},
                    "next_start": {"N": "0"},
                    "expires_at": {"N": str(now_us // 1_000_000 + KEEP_SECONDS)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise _unavailable(error) from error

    def release(self, subscription_id: str, owner: str) -> None:
        """Free a slot; a slot already freed (expired and removed) is no error."""
        with contextlib.suppress(_Refused):
            self._update(
                subscription_id,
                UpdateExpression="REMOVE slots.#owner",
                ExpressionAttributeNames={"#owner": owner},
            )

    def remove_expired(self, subscription_id: str, expired: dict[str, int]) -> None:
        """Free slots whose holders never released them, each only if still the same claim."""
        names = {f"#s{index}": owner for index, owner in enumerate(expired)}
        values = {f":v{index}": {"N": str(until)} for index, until in enumerate(expired.values())}
        with contextlib.suppress(_Refused):  # another caller removed them first
            self._update(
                subscription_id,
                UpdateExpression="REMOVE " + ", ".join(f"slots.{name}" for name in names),
                ConditionExpression=" AND ".join(f"slots.#s{i} = :v{i}" for i in range(len(expired))),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )

    def push_back(self, subscription_id: str, until_us: int) -> None:
        """No call starts before ``until_us`` (Zoho said too many requests)."""
        with contextlib.suppress(_Refused):  # already pushed as far or further
            self._update(
                subscription_id,
                UpdateExpression="SET next_start = :until",
                ConditionExpression="next_start < :until",
                ExpressionAttributeValues={":until": {"N": str(until_us)}},
            )

    def _update(self, subscription_id: str, **request: Any) -> Any:
        self.calls += 1
        try:
            return self._client.update_item(TableName=self._table, Key=_key(subscription_id), **request)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code == "ConditionalCheckFailedException":
                raise _Refused(cast("dict[str, Any] | None", error.response.get("Item"))) from None
            if code == "ValidationException" and "document path" in str(error):
                raise _Refused(None) from None  # no item yet: no slots map to write into
            raise _unavailable(error) from error
        except Exception as error:
            raise _unavailable(error) from error


def _key(subscription_id: str) -> dict[str, Any]:
    return {"pk": {"S": PREFIX + subscription_id}}


class _Refused(Exception):
    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.item = item


def _refusal(item: dict[str, Any] | None) -> Refusal:
    if not item or "slots" not in item:
        return Refusal(missing=True)
    slots = {owner: int(value["N"]) for owner, value in item["slots"].get("M", {}).items()}
    return Refusal(slots=slots, next_start_us=int(item.get("next_start", {}).get("N", "0")))


def _unavailable(error: Exception) -> Exception:
    if aws.is_unavailable(error):
        return ServiceUnavailable(
            "The throttle's table did not answer; nothing was sent to Zoho: try again shortly."
        )
    return error

"""The proxy's throttle in DynamoDB: one item per subscription ("throttle#<id>") shared by every Lambda.

The item holds ``slots`` (a map: the holder of each call under way, and when that claim expires) and
``next_start`` (microseconds since the epoch: the next free turn, the earliest moment the next call may
start). A turn and a slot are separate conditional claims: a caller whose turn is now takes both in one
UpdateItem; one whose turn lies ahead reserves it (no slot), sleeps, and takes a slot at its turn, so
waiting callers hold no slot. Releasing is one more UpdateItem. Claims of a caller that crashed expire
and are removed by the next caller who finds the slots full.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
    """A slot wanted now: by whom, how many may be under way, and when the slot frees itself."""

    owner: str
    now_us: int
    max_concurrent: int
    slot_expires_us: int  # when the claim frees itself if never released


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

    def start_now(self, subscription_id: str, claim: Claim, interval_us: int) -> int | Refusal:
        """No turn is queued and a slot is free: take both in one write (the start, µs), or why not."""
        values: dict[str, Any] = {
            ":following": {"N": str(claim.now_us + interval_us)},
            ":now": {"N": str(claim.now_us)},
        }
        refusal = self._take_slot(
            subscription_id,
            claim,
            extra_update=", next_start = :following",
            extra_condition=" AND next_start <= :now",
            extra_values=values,
        )
        return refusal if refusal is not None else claim.now_us

    def reserve(
        self, subscription_id: str, *, now_us: int, interval_us: int, latest_us: int, queued: bool
    ) -> int | Refusal:
        """A turn (its start, µs, at most ``latest_us``) and no slot, or why not. The slot is taken at the
        turn (``take_slot``), so a caller waiting for its turn holds none. ``queued``: whether turns are
        believed queued ahead (picks the form tried first; the other is tried when the item says so)."""
        values: dict[str, Any] = {
            ":now": {"N": str(now_us)},
            ":expires": {"N": str(now_us // 1_000_000 + KEEP_SECONDS)},
        }
        # next_start has passed: the turn is now, the next one an interval later.
        idle = {
            "UpdateExpression": "SET next_start = :following, expires_at = :expires",
            "ConditionExpression": "attribute_exists(slots) AND next_start <= :now",
            "ExpressionAttributeValues": {**values, ":following": {"N": str(now_us + interval_us)}},
        }
        # Turns are queued ahead: this one is next_start, if that is soon enough for it.
        ahead = {
            "UpdateExpression": "SET next_start = next_start + :interval, expires_at = :expires",
            "ConditionExpression": "next_start > :now AND next_start <= :latest",
            "ExpressionAttributeValues": {
                **values,
                ":interval": {"N": str(interval_us)},
                ":latest": {"N": str(latest_us)},
            },
        }
        refusal = Refusal(missing=True)
        for form in (ahead, idle) if queued else (idle, ahead):
            try:
                answer = self._update(
                    subscription_id,
                    **form,
                    ReturnValues="UPDATED_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except _Refused as refused:
                refusal = _refusal(refused.item)
                if refusal.missing or refusal.next_start_us > latest_us:
                    return refusal
                if (refusal.next_start_us <= now_us) == (form is idle):
                    return refusal  # the other form cannot apply either (the item moved on)
                continue
            return int(answer["Attributes"]["next_start"]["N"]) - interval_us
        return refusal

    def take_slot(self, subscription_id: str, claim: Claim) -> Refusal | None:
        """A slot for a call whose turn has come (None), or why not."""
        return self._take_slot(subscription_id, claim)

    def _take_slot(
        self,
        subscription_id: str,
        claim: Claim,
        *,
        extra_update: str = "",
        extra_condition: str = "",
        extra_values: dict[str, Any] | None = None,
    ) -> Refusal | None:
        try:
            self._update(
                subscription_id,
                UpdateExpression="SET slots.#owner = :slot, expires_at = :expires" + extra_update,
                ConditionExpression="attribute_exists(slots) AND size(slots) < :max" + extra_condition,
                ExpressionAttributeNames={"#owner": claim.owner},
                ExpressionAttributeValues={
                    ":slot": {"N": str(claim.slot_expires_us)},
                    ":max": {"N": str(claim.max_concurrent)},
                    ":expires": {"N": str(claim.now_us // 1_000_000 + KEEP_SECONDS)},
                    **(extra_values or {}),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _Refused as refused:
            return _refusal(refused.item)
        return None

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
                # ReturnValuesOnConditionCheckFailure: the item as it was (botocore types the answer as objects)
                raise _Refused(error.response.get("Item")) from None  # type: ignore[arg-type]
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

"""The throttle's concurrency slots in one process, on template.yaml's ThrottleTable in moto, with time
under the test's control: a slot whose caller crashed frees itself after the slot seconds, and full slots
are refused at once or after the caller's wait, a turn beyond the wait is refused naming the rate, and a
call at its turn costs two writes. (tests/integration/test_throttle_processes.py checks the
same across processes against the wall clock; this runs where mutation testing can reach it.)"""

from __future__ import annotations

import pytest
from aws_calls import counted_calls, failing_once

from broker_local.template import Stack
from tests.clocks import VirtualClock
from zoho_broker.catalogue import Throttling
from zoho_broker.logic.throttle import Throttle, Throttled
from zoho_broker.store import aws
from zoho_broker.store.throttle import PREFIX, ThrottleStore

SUBSCRIPTION = "sub_0123456789abcdef"
ONE_SLOT = Throttling(requests_per_minute=6000, max_concurrent_requests=1)
SLOT_SECONDS = 35.0


def _slots(stack: Stack) -> dict[str, int]:
    """The live claims as stored: holder -> expiry (µs)."""
    import boto3

    item = boto3.client("dynamodb").get_item(
        TableName=stack.physical_ids["ThrottleTable"],
        Key={"pk": {"S": PREFIX + SUBSCRIPTION}},
        ConsistentRead=True,
    )["Item"]
    return {holder: int(value["N"]) for holder, value in item.get("slots", {}).get("M", {}).items()}


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(1_800_000_000.0)


@pytest.fixture
def instances(stack: Stack, clock: VirtualClock) -> tuple[Throttle, Throttle]:
    """Two Lambda instances sharing the table and the clock."""
    table = stack.physical_ids["ThrottleTable"]
    return (
        Throttle(ThrottleStore(table), clock, slot_seconds=SLOT_SECONDS),
        Throttle(ThrottleStore(table), clock, slot_seconds=SLOT_SECONDS),
    )


def test_full_slots_refuse_a_caller_that_will_not_wait_with_retry_after_one_second(
    stack: Stack, instances: tuple[Throttle, Throttle], clock: VirtualClock
) -> None:
    first, second = instances
    first.acquire(SUBSCRIPTION, ONE_SLOT, wait_seconds=0)
    clock.sleep(1)  # the rate allows the next turn: only the slot is missing

    with pytest.raises(Throttled) as refused:
        second.acquire(SUBSCRIPTION, ONE_SLOT, wait_seconds=0)

    assert refused.value.message == "Too many calls for this subscription: 1 calls are under way."
    assert refused.value.retry_after_header == "1"
    assert len(_slots(stack)) == 1  # the refused caller left no claim behind


def test_full_slots_refuse_a_waiting_caller_when_none_frees_within_its_wait(
    stack: Stack, instances: tuple[Throttle, Throttle], clock: VirtualClock
) -> None:
    first, second = instances
    first.acquire(SUBSCRIPTION, ONE_SLOT, wait_seconds=0)
    began = clock.now

    with pytest.raises(Throttled) as refused:
        second.acquire(SUBSCRIPTION, ONE_SLOT, wait_seconds=2)

    assert "1 calls are under way" in refused.value.message
    assert 2 <= clock.now - began < 3  # it waited its 2 s (and a last grace), no longer
    assert len(_slots(stack)) == 1


@pytest.mark.parametrize("wait_seconds", [0, 5], ids=["no wait", "waiting"])
def test_a_slot_whose_caller_crashed_frees_itself_after_the_slot_seconds(
    stack: Stack, instances: tuple[Throttle, Throttle], clock: VirtualClock, wait_seconds: float
) -> None:
    # Given a caller whose Lambda died holding the only slot (never released)
    crashed, survivor = instances
    lost = crashed.acquire(SUBSCRIPTION, ONE_SLOT, wait_seconds=0)
    clock.sleep(SLOT_SECONDS - 1)
    with pytest.raises(Throttled):
        survivor.acquire(SUBSCRIPTION, ONE_SLOT, wait_seconds=0)

    # When its slot seconds have passed
    clock.sleep(1)
    turn = survivor.acquire(SUBSCRIPTION, ONE_SLOT, wait_seconds=wait_seconds)

    # Then the next caller gets the slot, and the dead claim is gone from the table
    assert list(_slots(stack)) == [turn.owner]
    assert lost.owner != turn.owner
    survivor.release(turn)
    assert _slots(stack) == {}


def test_a_caller_waiting_under_a_second_gets_a_slot_that_frees_within_its_wait(
    stack: Stack, instances: tuple[Throttle, Throttle], clock: VirtualClock
) -> None:
    # Given the only slot held by a caller whose Lambda died, half a second before it frees itself
    crashed, survivor = instances
    crashed.acquire(SUBSCRIPTION, ONE_SLOT, wait_seconds=0)
    clock.sleep(SLOT_SECONDS - 0.5)
    began = clock.now

    # When a caller willing to wait one second asks
    turn = survivor.acquire(SUBSCRIPTION, ONE_SLOT, wait_seconds=1)

    # Then it waits for the slot rather than being refused at once, and gets it within its wait
    assert 0.5 <= clock.now - began <= 1
    assert list(_slots(stack)) == [turn.owner]


def test_a_caller_whose_turn_lies_beyond_its_wait_is_told_the_rate_and_when_to_try_again(
    instances: tuple[Throttle, Throttle],
) -> None:
    first, second = instances
    once_a_minute = Throttling(requests_per_minute=1, max_concurrent_requests=5)
    first.acquire(SUBSCRIPTION, once_a_minute, wait_seconds=0)

    with pytest.raises(Throttled) as refused:
        second.acquire(SUBSCRIPTION, once_a_minute, wait_seconds=5)

    assert refused.value.message == (
        "Too many calls for this subscription: the rate of 1 calls a minute is used up."
    )
    assert refused.value.retry_after_header == "61"  # turns are 60.25 s apart


def test_a_call_that_comes_at_its_turn_costs_one_write_to_start_and_one_to_release(
    instances: tuple[Throttle, Throttle], clock: VirtualClock
) -> None:
    # Given a subscription whose turns are 0.25 s apart, and its first call (which makes its item)
    throttle, _ = instances
    four_a_second = Throttling(requests_per_minute=241, max_concurrent_requests=5)
    with (
        counted_calls(aws.dynamodb(), "UpdateItem") as first_updates,
        counted_calls(aws.dynamodb(), "PutItem") as first_puts,
    ):
        throttle.release(throttle.acquire(SUBSCRIPTION, four_a_second, wait_seconds=0))
    assert (len(first_updates), len(first_puts)) == (3, 1)  # refused (no item), made, taken, released
    assert throttle.store.calls == 4
    counted = throttle.store.calls

    # When the next call comes exactly at its turn
    clock.sleep(0.25)
    with (
        counted_calls(aws.dynamodb(), "UpdateItem") as updates,
        counted_calls(aws.dynamodb(), "PutItem") as puts,
    ):
        throttle.release(throttle.acquire(SUBSCRIPTION, four_a_second, wait_seconds=0))

    # Then it takes turn and slot in one write and frees the slot in another (the proxy benchmark's
    # "DynamoDB requests per call" is the store's count of these)
    assert (len(updates), len(puts)) == (2, 0)
    assert throttle.store.calls - counted == 2


def test_a_call_before_its_turn_reserves_it_in_one_write_and_takes_its_slot_at_the_turn(
    instances: tuple[Throttle, Throttle], clock: VirtualClock
) -> None:
    # Given a subscription whose turns are 0.25 s apart, and a call just made (which made its item)
    throttle, _ = instances
    four_a_second = Throttling(requests_per_minute=241, max_concurrent_requests=5)
    throttle.release(throttle.acquire(SUBSCRIPTION, four_a_second, wait_seconds=0))
    counted, began = throttle.store.calls, clock.now

    # When the next call comes at once, willing to wait a second
    throttle.release(throttle.acquire(SUBSCRIPTION, four_a_second, wait_seconds=1))

    # Then it waited for its turn: one write reserved it, one took the slot then, one freed it
    assert 0.24 <= clock.now - began <= 0.25
    assert throttle.store.calls - counted == 3


def test_an_instance_making_the_item_another_made_first_leaves_its_claims(
    stack: Stack, instances: tuple[Throttle, Throttle], clock: VirtualClock
) -> None:
    # Given a call under way; the other instance found no item a moment before the first made it
    first, second = instances
    first.acquire(SUBSCRIPTION, ONE_SLOT, wait_seconds=0)
    claims = _slots(stack)

    # When that instance makes the item too
    second.store.create(SUBSCRIPTION, int(clock.now * 1_000_000))

    # Then nothing fails, and the call under way still holds its slot
    assert _slots(stack) == claims
    assert len(claims) == 1


def test_a_dead_claim_another_caller_removed_first_is_no_error(
    stack: Stack, instances: tuple[Throttle, Throttle], clock: VirtualClock
) -> None:
    # Given a caller that died holding the only slot, found expired by two callers at once
    crashed, _ = instances
    crashed.acquire(SUBSCRIPTION, ONE_SLOT, wait_seconds=0)
    clock.sleep(SLOT_SECONDS)
    expired = _slots(stack)
    first, second = (ThrottleStore(stack.physical_ids["ThrottleTable"]) for _ in range(2))

    # When both remove it, the second finding it gone
    first.remove_expired(SUBSCRIPTION, expired)
    second.remove_expired(SUBSCRIPTION, expired)

    # Then neither fails, and the slot is free
    assert _slots(stack) == {}


def test_a_slot_claimed_before_the_item_exists_is_refused_as_dynamodb_does_and_the_item_made(
    stack: Stack, instances: tuple[Throttle, Throttle]
) -> None:
    # Given DynamoDB refusing a claim on a subscription that has no item yet as the real service can:
    # a ValidationException on the slot's document path (moto answers a failed condition instead)
    throttle, _ = instances
    with failing_once(
        aws.dynamodb(),
        "UpdateItem",
        "ValidationException",
        "The document path provided in the update expression is invalid for update",
        when=lambda params: "slots.#owner" in params.get("UpdateExpression", ""),
    ) as refused:
        # When the subscription's first call comes
        turn = throttle.acquire(SUBSCRIPTION, ONE_SLOT, wait_seconds=0)

    # Then the item is made and the call holds the slot
    assert refused and list(_slots(stack)) == [turn.owner]

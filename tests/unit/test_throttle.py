"""The throttle's answers that need no DynamoDB: Retry-After's rounding, a release that fails, an item that
never settles, and a proxy deployed without its throttle's table."""

from __future__ import annotations

import logging

import pytest

from tests.clocks import VirtualClock
from zoho_broker.catalogue import Throttling
from zoho_broker.clock import SystemClock
from zoho_broker.config import Settings
from zoho_broker.errors import ServiceUnavailable
from zoho_broker.logic.proxy import ProxyRuntime
from zoho_broker.logic.throttle import MAX_ATTEMPTS, Throttle, Throttled, Turn
from zoho_broker.services import Services
from zoho_broker.store.throttle import Claim, Refusal


@pytest.mark.parametrize(("seconds", "header"), [(0.001, "1"), (1.0, "1"), (1.2, "2"), (29.5, "30")])
def test_retry_after_is_whole_seconds_rounded_up(seconds: float, header: str) -> None:
    assert Throttled("busy", retry_after=seconds).retry_after_header == header


class _FailingStore:
    def release(self, subscription_id: str, owner: str) -> None:
        raise ServiceUnavailable("The throttle's table did not answer.")


def test_a_release_that_fails_does_not_fail_the_call_zoho_already_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    throttle = Throttle(_FailingStore(), SystemClock(), slot_seconds=35)  # type: ignore[arg-type]

    throttle.release(Turn("sub_1", "owner", 0))  # raises nothing

    # The operator reads why the subscription may look busy for a while
    [warning] = caplog.records
    assert (warning.levelname, warning.getMessage()) == (
        "WARNING",
        "slot not released; it expires on its own",
    )
    assert vars(warning)["subscription_id"] == "sub_1"


class _VanishingItem:
    """A throttle item that is gone at every look, however often it is made (deleted by hand, say)."""

    def __init__(self) -> None:
        self.created = 0

    def start_now(self, subscription_id: str, claim: Claim, interval_us: int) -> Refusal:
        return Refusal(missing=True)

    def create(self, subscription_id: str, now_us: int) -> None:
        self.created += 1


def test_a_throttle_item_that_never_settles_refuses_the_call_after_a_bounded_number_of_tries() -> None:
    store = _VanishingItem()
    throttle = Throttle(store, VirtualClock(1_800_000_000.0), slot_seconds=35)  # type: ignore[arg-type]
    throttling = Throttling(requests_per_minute=100, max_concurrent_requests=10)

    with pytest.raises(Throttled) as refused:
        throttle.acquire("sub_1", throttling, wait_seconds=5)

    assert (refused.value.message, refused.value.retry_after_header) == (
        "Too many calls for this subscription; retry shortly.",
        "1",
    )
    assert store.created == MAX_ATTEMPTS


def test_a_proxy_deployed_without_its_throttle_table_says_which_setting_is_missing() -> None:
    settings = Settings(subscriptions_table="s", flows_table="f", secret_prefix="p/", state_key_secret_id="k")

    with pytest.raises(RuntimeError) as refused:
        ProxyRuntime.make(Services(settings))

    assert str(refused.value) == "BROKER_THROTTLE_TABLE is not set: the proxy cannot throttle"

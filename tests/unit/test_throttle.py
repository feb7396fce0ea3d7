"""The throttle's answers that need no DynamoDB: Retry-After's rounding and a release that fails."""

from __future__ import annotations

import logging

import pytest

from zoho_broker.clock import SystemClock
from zoho_broker.errors import ServiceUnavailable
from zoho_broker.logic.throttle import Throttle, Throttled, Turn


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

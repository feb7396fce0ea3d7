"""Which AWS failures are passing (retry later: 503) and which are answers (a condition that failed is the
broker's business), as DynamoDB reports them in a cancelled transaction: by each item's reason."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from zoho_broker.store.aws import is_unavailable


def _cancelled(*reasons: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
            "CancellationReasons": [{"Code": reason} for reason in reasons],
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "TransactWriteItems",
    )


@pytest.mark.parametrize(
    ("reasons", "passing"),
    [
        (("None", "ThrottlingError"), True),
        (("TransactionConflict", "None"), True),
        (("ProvisionedThroughputExceeded",), True),
        (("ConditionalCheckFailed", "None"), False),
        (("None", "ValidationError"), False),
    ],
)
def test_a_cancelled_transaction_is_passing_only_when_an_item_was_throttled_or_in_conflict(
    reasons: tuple[str, ...], passing: bool
) -> None:
    assert is_unavailable(_cancelled(*reasons)) is passing


def test_a_failure_raised_from_a_passing_one_is_passing() -> None:
    wrapper = RuntimeError("could not store the state")
    wrapper.__cause__ = _cancelled("ThrottlingError")

    assert is_unavailable(wrapper) is True
    assert is_unavailable(RuntimeError("a bug")) is False

"""docs/operations.md's log catalogue and the code hold each other: every call listed, every row logged."""

from __future__ import annotations

import logging

from tests.log_catalogue import CATALOGUE, EVENTS, announced, logger_calls, problem


def test_every_log_call_is_in_the_catalogue_with_its_level_and_fields() -> None:
    calls = logger_calls()
    assert len(calls) > 40  # the enumeration found the broker's code

    for call in calls:
        entry = CATALOGUE.get(call.message)
        assert entry is not None, f"{call.where}: {call.message!r} is not in docs/operations.md"
        assert entry.level == call.level, f"{call.where}: {call.message!r}"
        if call.fields is not None:
            assert call.fields == entry.required | entry.optional, f"{call.where}: {call.message!r}"


def test_every_catalogue_line_is_logged_by_some_call() -> None:
    assert set(CATALOGUE) == {call.message for call in logger_calls()}


def record(message: str, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("zoho-broker.zoho_broker.logic.refresh")
    return logger.makeRecord(logger.name, level, "refresh.py", 243, message, None, None, extra=extra)


def test_a_logged_line_as_the_catalogue_lists_it_passes() -> None:
    assert problem(record("access token refreshed", subscription_id="sub_1")) is None
    assert problem(record("proxy call refused", error="zoho_error", reason="r")) is None
    assert problem(record("proxy call refused", error="zoho_error", reason="r", zoho_code="x")) is None


def test_a_line_the_catalogue_does_not_list_is_named_with_where_it_was_logged() -> None:
    assert problem(record("access token refresh", subscription_id="sub_1")) == (
        "refresh.py:243 logged 'access token refresh', which docs/operations.md's log catalogue does not list"
    )


def test_a_line_at_another_level_or_with_other_fields_is_named() -> None:
    assert problem(record("access token refreshed", logging.WARNING, subscription_id="sub_1")) == (
        "refresh.py:243 logged 'access token refreshed' at WARNING; the catalogue says INFO"
    )
    assert problem(record("access token refreshed")) == (
        "refresh.py:243 logged 'access token refreshed' with fields []; the catalogue says ['subscription_id']"
    )
    assert problem(record("proxy call refused", error="e", reason="r", code="x")) == (
        "refresh.py:243 logged 'proxy call refused' with fields ['code', 'error', 'reason']; "
        "the catalogue says ['error', 'reason', '[zoho_code]']"
    )


def test_lines_of_other_loggers_are_not_the_catalogue_s_business() -> None:
    other = logging.getLogger("httpx").makeRecord(
        "httpx", logging.INFO, "x.py", 1, "HTTP Request", None, None
    )
    assert problem(other) is None


def test_every_announced_event_is_described_with_its_detail() -> None:
    assert set(EVENTS) == set(announced())
    assert EVENTS["SubscriptionReconnected"] - EVENTS["SubscriptionRecovered"] == {
        "previous_data_centre",
        "new_data_centre",
    }


def test_an_announcement_whose_detail_lost_or_gained_a_key_is_named() -> None:
    detail = dict.fromkeys(EVENTS["SubscriptionRecovered"], "x")
    good = record("SubscriptionRecovered", logging.WARNING, announcement=detail)
    bad = record("SubscriptionRecovered", logging.WARNING, announcement={**detail, "token": "x"})

    assert problem(good) is None
    assert problem(bad) == (
        f"refresh.py:243 announced SubscriptionRecovered with {sorted({*detail, 'token'})}; "
        f"docs/architecture.md says {sorted(detail)}"
    )

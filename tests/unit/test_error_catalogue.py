"""docs/errors.md and the code hold each other: every error the code makes is listed, every row is made."""

from __future__ import annotations

import contextlib

from tests.error_catalogue import CATALOGUE, constructions, errors_made, problem
from zoho_broker.errors import BrokerError, NotFound, ZohoError
from zoho_broker.zoho_client import ZohoClient


def _statuses(construction_status: int, error: type[BrokerError], transient: bool | None) -> set[int]:
    """A Zoho error whose transience is decided at run time is listed once as 502 and once as 503."""
    if issubclass(error, ZohoError) and transient is None and error.status_code == 502:
        return {502, 503}
    return {construction_status}


def test_every_error_the_code_makes_is_in_the_catalogue_with_its_status() -> None:
    made = constructions()
    assert len(made) > 80  # the enumeration found the broker's code

    for construction in made:
        if construction.sentence is None:
            continue  # a message passed on from another error, judged when made
        listed = {
            entry.status
            for entry in CATALOGUE
            if (entry.code, entry.sentence, entry.zoho_code)
            == (construction.error.code, construction.sentence, construction.zoho_code)
        }
        expected = _statuses(construction.status, construction.error, construction.transient)
        assert listed == expected, f"{construction.where}: {construction.sentence!r} is listed as {listed}"


def test_every_catalogue_row_is_made_by_some_error() -> None:
    made = constructions()
    spelled = {(c.error.code, c.sentence, c.zoho_code) for c in made}
    sentences = {c.sentence for c in made}
    # InvalidInput(error.message): a code that takes another error's sentence as it is
    passing_on = {c.error.code for c in made if c.sentence is None}
    for entry in CATALOGUE:
        key = (entry.code, entry.sentence, entry.zoho_code)
        assert key in spelled or (entry.code in passing_on and entry.sentence in sentences), (
            f"nothing makes {entry}"
        )


def test_an_error_as_listed_passes_with_its_values_filled_in() -> None:
    assert problem(NotFound("No subscription with id 'sub_1'.")) is None
    assert problem(ZohoError("Zoho answered HTTP 502.", zoho_code="http_502", transient=True)) is None
    assert (
        problem(ZohoError("Zoho refused the request (invalid_code).", zoho_code="x", transient=False)) is None
    )


def test_a_changed_sentence_a_flipped_status_or_another_zoho_code_is_named() -> None:
    assert problem(NotFound("No subscription with id 'sub_1'")) == (
        "NotFound 404 not_found \"No subscription with id 'sub_1'\" is not in docs/errors.md"
    )
    assert problem(ZohoError("Zoho answered HTTP 502.", zoho_code="http_502", transient=False)) == (
        "ZohoError 502 zoho_error (http_502) 'Zoho answered HTTP 502.' is not in docs/errors.md"
    )
    assert problem(ZohoError("Zoho could not be reached.", zoho_code="timeout", transient=True)) == (
        "ZohoError 503 zoho_error (timeout) 'Zoho could not be reached.' is not in docs/errors.md"
    )


def test_only_errors_the_broker_makes_are_recorded_not_those_a_test_makes() -> None:
    # Given a test playing Zoho's part with an error of its own, and the broker's client failing for real
    with errors_made() as made:
        BrokerError("a test's own error")
        with contextlib.suppress(ZohoError):
            ZohoClient(timeout_seconds=0.5).revoke(revoke_url="http://127.0.0.1:9/revoke", refresh_token="t")

    # Then only the broker's is recorded, with the sentence it made
    assert [(type(error).__name__, error.message) for error in made] == [
        ("ZohoError", "Zoho could not be reached.")
    ]

"""DynamoDB items written and read as boto3's serializer did: stored subscriptions and flows stay readable."""

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from zoho_broker.store.items import from_item, to_item

STORED: dict[str, Any] = {
    "pk": "sub#sub_0123",
    "name": "Acme Zoho CRM",
    "connect_generation": 3,
    "refresh_due_at": 1_795_000_000,
    "throttling": {"requests_per_minute": 100, "max_concurrent_requests": 10},
    "custom_fields": {"RedirectUrl": "", "OrganizationId": "12345"},
    "flags": [True, False, None, "x", 7],
    "last_error": None,
    "digest": b"\x00\xff",
    "nested": {"empty": {}, "list": [], "deep": {"n": 0}},
}


def test_stored_data_is_what_boto3s_serializer_makes() -> None:
    serializer = TypeSerializer()
    expected = {key: serializer.serialize(value) for key, value in STORED.items() if value is not None}

    assert to_item(STORED) == expected


def test_read_numbers_are_int_or_float() -> None:
    # Given an item written by boto3, when read, then numbers are int or float and the rest is unchanged.
    serializer, deserializer = TypeSerializer(), TypeDeserializer()
    written = {key: serializer.serialize(value) for key, value in STORED.items() if value is not None}
    written["ratio"] = serializer.serialize(Decimal("0.25"))
    written["tags"] = serializer.serialize({"a", "b"})
    written["sizes"] = serializer.serialize({Decimal(1), Decimal("1.5")})
    written["digests"] = serializer.serialize({b"\x00", b"\xff"})

    read = from_item(written)

    assert read == {
        **{key: value for key, value in STORED.items() if value is not None},
        "ratio": 0.25,
        "tags": {"a", "b"},
        "sizes": {1, 1.5},
        "digests": {b"\x00", b"\xff"},
    }
    assert type(read["refresh_due_at"]) is int
    assert {key: deserializer.deserialize(value) for key, value in written.items()}.keys() == read.keys()


def test_a_float_is_refused_as_boto3_refuses_it() -> None:
    with pytest.raises(TypeError):
        to_item({"expires_in": 0.5})

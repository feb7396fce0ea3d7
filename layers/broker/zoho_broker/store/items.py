"""Conversion between plain JSON-like dicts and DynamoDB's attribute-value format.

Written here rather than taken from boto3.dynamodb.types: importing any boto3 module imports boto3
itself, with its resource layer and s3transfer (see store/aws.py). Numbers come back as int or float,
never Decimal; like boto3's serializer, this one refuses floats (DynamoDB numbers are decimal).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    """Drop None values (DynamoDB keeps no nulls worth having) and serialise the rest."""
    return {key: serialize(value) for key, value in data.items() if value is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: deserialize(value) for key, value in item.items()}


def serialize(value: Any) -> dict[str, Any]:
    """One attribute value, as boto3's TypeSerializer makes it for JSON-like data."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return {"N": str(value)}
    if isinstance(value, float):
        raise TypeError("Float types are not supported. Use int or Decimal.")
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, Mapping):
        return {"M": {str(key): serialize(inner) for key, inner in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [serialize(inner) for inner in value]}
    raise TypeError(f"{type(value).__name__} cannot be stored in DynamoDB")


def deserialize(attribute: dict[str, Any]) -> Any:
    ((kind, value),) = attribute.items()
    if kind == "NULL":
        return None
    if kind == "N":
        return _number(value)
    if kind == "M":
        return {key: deserialize(inner) for key, inner in value.items()}
    if kind == "L":
        return [deserialize(inner) for inner in value]
    if kind == "NS":
        return {_number(inner) for inner in value}
    if kind in ("SS", "BS"):
        return set(value)
    if kind in ("S", "B", "BOOL"):
        return value
    raise TypeError(f"unknown DynamoDB attribute type {kind!r}")


def _number(text: str) -> int | float:
    number = Decimal(text)
    return int(number) if number == number.to_integral_value() else float(number)

"""Masking of secrets for anything a person or a log may see."""

from __future__ import annotations

_PREFIX = 4
_MIN_LENGTH_FOR_PREFIX = 12


def mask(value: str | None) -> str | None:
    """Show at most the first four characters and the length, so values can be told apart.

    Short values show no prefix at all: four characters of an eight-character secret is half of it.
    """
    if value is None:
        return None
    prefix = value[:_PREFIX] if len(value) >= _MIN_LENGTH_FOR_PREFIX else ""
    return f"{prefix}…({len(value)} chars)"

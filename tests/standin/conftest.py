"""A Zoho stand-in of two data centres per test, and a browser that does not follow redirects."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from broker_local.zoho_standin import ZohoStandIn


@pytest.fixture
def standin() -> Iterator[ZohoStandIn]:
    with ZohoStandIn({"us": 0, "eu": 0}) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    with httpx.Client(follow_redirects=False, timeout=5) as client:
        yield client

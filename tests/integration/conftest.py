"""Set-up shared by the integration tests that need a connected subscription and its stored secret."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from flow import connected as connected_subscription
from stored import Announcements

from broker_local.template import Stack
from tests.clocks import VirtualClock
from zoho_broker.services import Services, get_services


@pytest.fixture
def services(gateway: Any) -> Services:
    """The services the in-process handlers use (the gateway set their environment)."""
    return get_services()


@pytest.fixture
def held_clock(services: Services, monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    """The services' clock, held by the test from now on: however slow the machine, no time passes
    for the broker (its throttle, leases and caches) until the test or one of the broker's waits moves it."""
    clock = VirtualClock(time.time())
    monkeypatch.setattr(services, "clock", clock)
    return clock


@pytest.fixture
def connected(admin: httpx.Client, browser: httpx.Client) -> Callable[..., str]:
    """Make a subscription and connect it through Zoho's consent page; returns its id."""
    return functools.partial(connected_subscription, admin, browser)


@pytest.fixture
def announcements(stack: Stack) -> Announcements:
    return Announcements()

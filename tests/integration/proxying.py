"""What the proxy's tests share: ProxyFunction's environment and a connected subscription."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from broker_local.template import Stack, function_environment
from tests.conftest import TEMPLATE
from tests.integration.flow import connect, create_subscription
from zoho_broker.services import reset_services

ORGANIZATION = "4000000001"  # the stand-in's first account's organization


@pytest.fixture
def broker_env(broker_env: dict[str, str], stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The shared environment plus ProxyFunction's own variables, as template.yaml gives them."""
    proxy = function_environment(TEMPLATE, stack, "ProxyFunction")
    own = {name: proxy[name] for name in ("BROKER_THROTTLE_TABLE", "BROKER_PROXY_SLOT_SECONDS")}
    for name, value in own.items():
        monkeypatch.setenv(name, value)
    reset_services()
    return {**broker_env, **own}


def connected(admin: httpx.Client, browser: httpx.Client, **fields: Any) -> str:
    # A rate that lets a test's calls follow each other at once, unless the test is about the rate.
    fields.setdefault("throttling", {"requests_per_minute": 60_000, "max_concurrent_requests": 10})
    subscription = create_subscription(admin, **fields)
    sid = str(subscription["subscription_id"])
    assert connect(admin, browser, sid, data_centre="eu").status_code == 200
    return sid

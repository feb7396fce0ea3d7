"""What the proxy's tests share: a connected subscription and the stand-in's organization."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration import flow

ORGANIZATION = "4000000001"  # the stand-in's first account's organization


def connected(admin: httpx.Client, browser: httpx.Client, **fields: Any) -> str:
    # A rate that lets a test's calls follow each other at once, unless the test is about the rate.
    fields.setdefault("throttling", {"requests_per_minute": 60_000, "max_concurrent_requests": 10})
    return flow.connected(admin, browser, **fields)

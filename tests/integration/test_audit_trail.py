"""An operator follows a subscription's life in the functions' logs: each change is one INFO line
naming the subscription (the lines docs/operations.md lists). Through the admin API and the consent
journey, AWS in moto, the Zoho stand-in over real HTTP."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from flow import connect, create_subscription

LIFE = [
    "subscription created",
    "connect link created",
    "consent started",
    "subscription connected",
    "access token refreshed",
    "subscription updated",
    "subscription disconnected",  # deleting disconnects first: the refresh token is revoked at Zoho
    "subscription deleted",
]


def test_a_subscriptions_life_reads_in_the_logs_one_info_line_per_change(
    admin: httpx.Client, browser: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    sid = create_subscription(admin)["subscription_id"]
    assert connect(admin, browser, sid).status_code == 200
    assert admin.post(f"/admin/subscriptions/{sid}/refresh").json()["result"] == "refreshed"
    assert admin.patch(f"/admin/subscriptions/{sid}", json={"name": "Acme, renamed"}).status_code == 200
    assert admin.delete(f"/admin/subscriptions/{sid}").status_code == 204

    about = [r for r in caplog.records if vars(r).get("subscription_id") == sid]
    assert [(r.levelname, r.getMessage()) for r in about] == [("INFO", line) for line in LIFE]


def test_the_operations_guide_lists_each_line_of_that_life() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    assert [line for line in LIFE if f"`{line}`" not in guide] == []

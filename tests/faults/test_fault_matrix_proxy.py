"""The proxy's flows in the fault matrix (tests/faults/test_fault_matrix.py): every AWS and Zoho call of a
proxied call, and of one whose token Zoho refused, failed once in each way it really fails."""

from __future__ import annotations

import time

import httpx
import pytest

from broker_local.zoho_standin import ZohoStandIn
from tests.faults.test_fault_matrix import (
    Flow,
    Outcome,
    Scenario,
    _answer,
    _connected,
    check_every_call,
    fresh_services,
)
from tests.integration.stored import age_connection
from zoho_broker.services import get_services

pytestmark = pytest.mark.slow

__all__ = ["fresh_services"]  # the fixture


def _proxied(s: Scenario) -> Outcome:
    """A sync job's call; Zoho's own answers (passed through) are Zoho's words, not the broker's."""
    response = s.admin.get(f"/proxy/{s.subscription_id}/org")
    s.last_page = response.headers.get("retry-after", "")
    if not response.is_success and "x-broker-error" not in response.headers:
        return Outcome(False, None, f"Zoho answered {response.status_code}")
    return _answer(response, 200)


def _as_retry_after_says(s: Scenario) -> Outcome:
    """What the client does: ask again after Retry-After, a few times."""
    outcome = _proxied(s)
    for _ in range(3):
        if outcome.ok or not s.last_page:
            break
        time.sleep(float(s.last_page))
        outcome = _proxied(s)
    return outcome


def _token_refused_by_zoho(s: Scenario) -> None:
    """Connected over a minute ago; Zoho has since invalidated the access token."""
    _connected(s)
    age_connection(get_services(), s.subscription_id, seconds=120)
    s.zoho.expire_access_tokens()


PROXY_FLOWS = [
    Flow("proxy", _connected, _proxied, ends_connected=True, retry=_as_retry_after_says),
    Flow(
        "proxy (token refused by Zoho)",
        _token_refused_by_zoho,
        _proxied,
        ends_connected=True,
        retry=_as_retry_after_says,
    ),
]


@pytest.mark.parametrize("flow", PROXY_FLOWS, ids=[flow.name for flow in PROXY_FLOWS])
def test_every_call_of_a_proxied_call_failing_once_leaves_a_clean_state(
    flow: Flow,
    fresh_services: None,
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    check_every_call(flow, admin, browser, zoho, capsys)

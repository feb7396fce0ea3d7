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


def _proxied(s: Scenario, *, max_wait: int = 0) -> Outcome:
    """A sync job's call; Zoho's own answers (passed through) are Zoho's words, not the broker's."""
    response = s.admin.get(f"/proxy/{s.subscription_id}/org", headers={"X-Broker-Max-Wait": str(max_wait)})
    s.last_page = response.headers.get("retry-after", "")
    if not response.is_success and "x-broker-error" not in response.headers:
        return Outcome(False, None, f"Zoho answered {response.status_code}")
    return _answer(response, 200)


def _waiting_for_its_turn(s: Scenario) -> Outcome:
    return _proxied(s, max_wait=5)


def _as_retry_after_says(s: Scenario) -> Outcome:
    """What the client does: ask again after Retry-After, a few times."""
    outcome = _proxied(s)
    for _ in range(3):
        if outcome.ok or not s.last_page:
            break
        time.sleep(float(s.last_page))
        outcome = _proxied(s)
    return outcome


# A call waits for its turn only while the previous call's turn lies ahead, so how fast a flow's steps
# run would pick its path, and the matrix fails a run whose path differs from the first run's (a slow
# machine, mutmut's trampolines). Each flow's rate makes the choice certain instead.
TURNS_NEVER_AHEAD = {"requests_per_minute": 100_000, "max_concurrent_requests": 10}  # 0.6 ms apart
TURNS_AHEAD = {"requests_per_minute": 30, "max_concurrent_requests": 10}  # 2 s apart


def _token_refused_by_zoho(s: Scenario) -> None:
    """Connected over a minute ago; Zoho has since invalidated the access token. The retry after the
    refresh starts at once (its turn has passed)."""
    s.throttling = TURNS_NEVER_AHEAD
    _connected(s)
    age_connection(get_services(), s.subscription_id, seconds=120)
    s.zoho.expire_access_tokens()


def _call_just_made(s: Scenario) -> None:
    """A sync job's call a moment ago: the next one's turn is 2 s ahead, so a call willing to wait
    (X-Broker-Max-Wait) reserves it, sleeps and then takes a slot."""
    s.throttling = TURNS_AHEAD
    _connected(s)
    assert _proxied(s).ok


PROXY_FLOWS = [
    Flow("proxy", _connected, _proxied, ends_connected=True, retry=_as_retry_after_says),
    Flow(
        "proxy (turn ahead)",
        _call_just_made,
        _waiting_for_its_turn,
        ends_connected=True,
        retry=_as_retry_after_says,
    ),
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

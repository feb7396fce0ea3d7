"""`broker subscriptions clear-organization` and the organization in `subscriptions show`, against the
real local runner and the Zoho stand-in over HTTP."""

from __future__ import annotations

import httpx

from tests.cli.running import Cli, create_subscription
from tests.integration.flow import decide_at_zoho, open_link


def _consent(cli: Cli, subscription_id: str, account: str | None = None) -> httpx.Response:
    link = cli("connect-link", subscription_id).out.strip()
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        started = open_link(browser, link)
        assert started.status_code == 302, started.text
        return browser.get(decide_at_zoho(browser, started.headers["location"], account=account))


def test_clearing_a_binding_lets_another_organization_connect(
    cli: Cli,
) -> None:
    subscription_id = create_subscription(cli)["subscription_id"]
    assert _consent(cli, subscription_id).status_code == 200
    bound = cli("subscriptions", "show", subscription_id)
    refused = _consent(cli, subscription_id, account="admin@globex.example")

    declined = cli("subscriptions", "clear-organization", subscription_id)  # no terminal, no --yes
    still_bound = cli("subscriptions", "show", subscription_id)
    cleared = cli("subscriptions", "clear-organization", subscription_id, "--yes")
    unbound = cli("--json", "subscriptions", "show", subscription_id)
    accepted = _consent(cli, subscription_id, account="admin@globex.example")
    rebound = cli("subscriptions", "show", subscription_id)

    assert "Acme Ltd (id 4000000001)" in bound.out
    assert refused.status_code == 409
    assert declined.code != 0 and "Acme Ltd (id 4000000001)" in still_bound.out
    assert cleared.code == 0, cleared.err
    assert "Cleared the organization binding" in cleared.out
    assert unbound.json()["organization"] is None and unbound.json()["status"] == "connected"
    assert accepted.status_code == 200 and "Globex Corporation" in accepted.text
    assert "Globex Corporation (id 4000000002)" in rebound.out

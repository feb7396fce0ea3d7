"""Letting go of tokens as an operator sees it: what a disconnect leaves shown and scheduled, a client id
change whose revocation Zoho refused (retried by the refresher), and a subscription whose secret is
gone. Through the admin API, AWS in moto, the Zoho stand-in over real HTTP."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import boto3
import httpx
import pytest
from aws_calls import counted_calls, on_call
from flow import connected, create_subscription, logged_once, refusal
from stored import stored_secret, take_over_lease

from broker_local.zoho_standin import ZohoStandIn
from zoho_broker.logic import refresh
from zoho_broker.services import Services
from zoho_broker.store import aws

OLD_CLIENT = "1000.CLIENTID0123456789"


def test_a_disconnect_shows_no_token_or_expiry_any_more_in_the_api_or_the_secret(
    admin: httpx.Client, browser: httpx.Client, services: Services
) -> None:
    sid = connected(admin, browser, data_centre="us")
    assert admin.get(f"/admin/subscriptions/{sid}").json()["access_token_expires_at"] is not None

    revoked = admin.post(f"/admin/subscriptions/{sid}/revoke")

    assert revoked.status_code == 200
    view = admin.get(f"/admin/subscriptions/{sid}").json()
    assert (view["status"], view["access_token_expires_at"], view["connected_at"]) == (
        "not_connected",
        None,
        None,
    )
    # A sync job reading Secrets Manager directly finds nothing it could take for a live token
    held = stored_secret(services, sid)
    gone = ("refresh_token", "access_token", "access_token_expires_at", "api_domain", "data_centre")
    assert {field: held[field] for field in gone} == dict.fromkeys(gone)


def test_revoking_a_subscription_that_holds_no_token_schedules_no_refresher_visit(
    admin: httpx.Client, services: Services
) -> None:
    sid = create_subscription(admin)["subscription_id"]

    revoked = admin.post(f"/admin/subscriptions/{sid}/revoke")

    assert revoked.status_code == 200
    assert (revoked.json()["revocation_pending"], revoked.json()["next_refresh_at"]) == (False, None)
    far_ahead = int(time.time()) + 30 * 86400
    assert sid not in set(services.subscriptions.due_for_refresh(due_before=far_ahead))


def test_a_new_client_id_for_a_subscription_that_holds_no_token_schedules_no_refresher_visit(
    admin: httpx.Client, services: Services
) -> None:
    sid = create_subscription(admin)["subscription_id"]

    changed = admin.patch(f"/admin/subscriptions/{sid}", json={"client_id": "1000.OTHERCLIENT"})

    assert changed.status_code == 200
    assert (changed.json()["client_id"], changed.json()["next_refresh_at"]) == ("1000.OTHERCLIENT", None)
    far_ahead = int(time.time()) + 30 * 86400
    assert sid not in set(services.subscriptions.due_for_refresh(due_before=far_ahead))


def test_revoking_again_after_zoho_confirmed_leaves_no_refresher_visit_scheduled(
    admin: httpx.Client, browser: httpx.Client, services: Services
) -> None:
    # Given a subscription revoked once, Zoho confirming at once
    sid = connected(admin, browser, data_centre="us")
    assert admin.post(f"/admin/subscriptions/{sid}/revoke").json()["revocation_pending"] is False

    # When an operator revokes it again
    again = admin.post(f"/admin/subscriptions/{sid}/revoke")

    # Then there is nothing left to revoke, and the refresher is not sent to look
    assert again.status_code == 200
    assert (again.json()["revocation_pending"], again.json()["next_refresh_at"]) == (False, None)
    assert sid not in set(services.subscriptions.due_for_refresh(due_before=int(time.time()) + 30 * 86400))


def _client_id_changed_while_zoho_refuses(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> tuple[str, str, httpx.Response]:
    """A connected subscription whose client id an operator changed while Zoho refused the revocation:
    its id, the old refresh token and the PATCH answer."""
    sid = connected(admin, browser, data_centre="us")
    old = stored_secret(services, sid)["refresh_token"]
    zoho.inject_fault("server_error")
    changed = admin.patch(f"/admin/subscriptions/{sid}", json={"client_id": "1000.OTHERCLIENT"})
    assert changed.status_code == 200
    return sid, old, changed


def test_a_client_id_change_whose_revocation_zoho_refused_is_revoked_by_the_refresher(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    sid, old, changed = _client_id_changed_while_zoho_refuses(admin, browser, zoho, services)

    assert (changed.json()["status"], changed.json()["revocation_pending"]) == ("not_connected", True)
    assert changed.json()["next_refresh_at"] is not None  # the refresher comes back for it
    assert old in zoho.live_refresh_tokens(OLD_CLIENT)

    refresh.sweep(services)  # the next scheduled run

    assert old not in zoho.live_refresh_tokens(OLD_CLIENT)
    assert stored_secret(services, sid)["pending_revocations"] == []
    assert admin.get(f"/admin/subscriptions/{sid}").json()["revocation_pending"] is False


def test_a_revocation_zoho_refuses_again_at_the_refreshers_visit_stays_pending_and_scheduled(
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    services: Services,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a client id change whose revocation Zoho refused
    sid, old, _ = _client_id_changed_while_zoho_refuses(admin, browser, zoho, services)
    caplog.clear()

    # When Zoho refuses it again when the refresher comes back for it
    zoho.inject_fault("server_error")
    visited_at = time.time()
    refresh.refresh(services, sid, force=True)

    # Then the token is still recorded, and the refresher is due back for it after a backoff
    view = admin.get(f"/admin/subscriptions/{sid}").json()
    assert view["revocation_pending"] is True
    secret = services.secrets.get(sid)
    assert secret is not None and [pending.refresh_token for pending in secret.pending_revocations] == [old]
    assert datetime.fromisoformat(view["next_refresh_at"]).timestamp() >= visited_at + 55
    assert old in zoho.live_refresh_tokens(OLD_CLIENT)
    line = logged_once(caplog, "refresh token revocation postponed")
    assert (line["subscription_id"], line["error"]) == (sid, "http_500")  # whose, and what Zoho said


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("POST", "/revoke", None), ("PATCH", "", {"client_secret": "a-new-secret-from-the-api-console"})],
    ids=["revoke", "update"],
)
def test_revoking_or_updating_a_subscription_whose_secret_is_gone_says_to_recreate_it(
    admin: httpx.Client, services: Services, method: str, path: str, body: dict[str, str] | None
) -> None:
    sid = create_subscription(admin)["subscription_id"]
    boto3.client("secretsmanager").delete_secret(
        SecretId=services.secrets.name_for(sid), ForceDeleteWithoutRecovery=True
    )

    answer = admin.request(method, f"/admin/subscriptions/{sid}{path}", json=body)

    assert answer.status_code == 404
    assert answer.json() == {
        "error": "not_found",
        "message": "The subscription's secret is missing; recreate the subscription.",
    }


def test_deleting_while_zoho_does_not_confirm_the_revocation_says_try_again_and_keeps_the_subscription(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    # Given a connected subscription, and Zoho failing the revocation
    sid = connected(admin, browser, data_centre="us")
    token = stored_secret(services, sid)["refresh_token"]
    zoho.inject_fault("server_error")

    # When an operator deletes it
    asked_at = time.time()
    refused = admin.delete(f"/admin/subscriptions/{sid}")

    # Then: try again (503, a passing condition); disconnected but kept, the token recorded, and the
    # refresher due back for it after the first backoff (1 to 2 minutes)
    assert refusal(refused) == (
        503,
        "zoho_error",
        "The subscription is disconnected, but Zoho did not confirm revoking its refresh token; "
        "try again in a few minutes.",
    )
    view = admin.get(f"/admin/subscriptions/{sid}").json()
    assert (view["status"], view["revocation_pending"]) == ("not_connected", True)
    base = services.settings.retry_base_seconds
    due = datetime.fromisoformat(view["next_refresh_at"]).timestamp()
    assert asked_at + base - 5 <= due <= time.time() + 2 * base
    assert token in zoho.live_refresh_tokens(OLD_CLIENT)

    # And when Zoho answers again, the same request deletes it
    assert admin.delete(f"/admin/subscriptions/{sid}").status_code == 204
    assert token not in zoho.live_refresh_tokens(OLD_CLIENT)
    assert admin.get(f"/admin/subscriptions/{sid}").status_code == 404


def test_a_revoke_writes_the_subscription_four_times(
    admin: httpx.Client, browser: httpx.Client, services: Services
) -> None:
    # Given a connected subscription
    sid = connected(admin, browser, data_centre="us")

    # When an operator revokes it, Zoho confirming
    with counted_calls(aws.dynamodb(), "UpdateItem") as writes:
        assert admin.post(f"/admin/subscriptions/{sid}/revoke").status_code == 200

    # Then: the lease taken, the disconnection (which lets the lease go in the same write), the lease
    # taken again to revoke at Zoho, and let go; a write that let the lease go is not followed by another
    assert [" ".join(write["UpdateExpression"].split()[:2]) for write in writes] == [
        "SET lease_owner",
        "SET #status",
        "SET lease_owner",
        "REMOVE lease_owner,",
    ]


def test_a_revoke_whose_lease_another_took_over_says_try_again_and_leaves_the_connection(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    # Given a connected subscription, and its lease taken over (it ran out) while the revoke wrote the
    # secret
    sid = connected(admin, browser, data_centre="us")
    before = stored_secret(services, sid)
    taken: list[bool] = []

    def take_over(**_: Any) -> None:
        if not taken:
            taken.append(True)
            take_over_lease(services, sid)

    # When an operator revokes it
    with on_call(aws.secretsmanager(), "PutSecretValue", take_over, name="take-over"):
        answer = admin.post(f"/admin/subscriptions/{sid}/revoke")

    # Then try again, and the connection is as it was, its tokens still working
    assert refusal(answer) == (
        503,
        "busy",
        "The lease ran out and another refresh took the subscription over; try again in a few seconds.",
    )
    assert admin.get(f"/admin/subscriptions/{sid}").json()["status"] == "connected"
    assert stored_secret(services, sid)["refresh_token"] == before["refresh_token"]
    assert before["refresh_token"] in zoho.live_refresh_tokens(OLD_CLIENT)

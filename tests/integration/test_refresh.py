"""Keeping tokens fresh: the lease, the failure policy, the announcements, the scheduled sweep and its
SQS fan-out, token vending, refresh now and revoke. AWS in moto, Zoho's stand-in over real HTTP."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from aws_calls import counted_calls, failing_once
from flow import connect, connected, create_subscription, logged_once, refusal
from stored import Announcements, edit_secret, expire_token, stored_secret

from broker_local.functions import function_entry
from broker_local.gateway import LambdaContext, import_handler
from broker_local.scheduler import LocalScheduler, sqs_event
from broker_local.template import Stack
from broker_local.zoho_standin import ZohoStandIn
from tests.conftest import ROOT, TEMPLATE
from tests.whoami import whoami
from zoho_broker.logic import refresh, schedule
from zoho_broker.models import RefreshResult
from zoho_broker.services import Services
from zoho_broker.store import aws


def _view(admin: httpx.Client, subscription_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = admin.get(f"/admin/subscriptions/{subscription_id}").json()
    return answer


def _works(zoho: ZohoStandIn, data_centre: str, access_token: str) -> bool:
    return whoami(zoho.accounts_servers[data_centre], access_token).status_code == 200


def test_a_due_subscription_is_refreshed_and_keeps_its_refresh_token(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    sid = connected(admin, browser)
    before = stored_secret(services, sid)
    expire_token(services, sid, seconds_left=60)

    started = int(time.time())
    outcome = refresh.refresh(services, sid)
    ended = int(time.time())

    after = stored_secret(services, sid)
    assert outcome.result == RefreshResult.REFRESHED
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] == before["refresh_token"]
    assert after["api_domain"] == zoho.accounts_servers["eu"]
    assert _works(zoho, "eu", after["access_token"])
    view = _view(admin, sid)
    assert view["status"] == "connected"
    assert started <= datetime.fromisoformat(view["last_refreshed_at"]).timestamp() <= ended
    # Next due at the subscription's own point of the refresh period, at least 15 minutes before the
    # new token expires.
    next_at = datetime.fromisoformat(view["next_refresh_at"])
    expires_at = datetime.fromisoformat(view["access_token_expires_at"])
    margin = services.settings.refresh_margin_seconds
    period = schedule.refresh_period(margin)
    assert timedelta(seconds=margin) <= expires_at - next_at < timedelta(seconds=margin + period)
    assert int(next_at.timestamp()) % period == int(schedule.phase_fraction(sid) * period)


def test_a_result_write_dynamodb_throttles_is_retried_and_the_refresh_recorded(
    admin: httpx.Client, browser: httpx.Client, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a due subscription, and DynamoDB throttling the write that records the refresh, once
    caplog.set_level(logging.INFO)
    sid = connected(admin, browser)
    expire_token(services, sid, seconds_left=60)
    with failing_once(
        aws.dynamodb(),
        "UpdateItem",
        "ProvisionedThroughputExceededException",
        when=lambda params: "last_refreshed_at" in params.get("UpdateExpression", ""),
    ) as throttled:
        outcome = refresh.refresh(services, sid)

    # Then the write is tried again, the refresh is recorded, and the operator reads which attempt failed
    assert throttled and outcome.result == RefreshResult.REFRESHED
    assert (
        _view(admin, sid)["access_token_expires_at"]
        == stored_secret(services, sid)["access_token_expires_at"]
    )
    retry = logged_once(caplog, "result write failed; retrying")
    assert (retry["levelname"], retry["attempt"]) == ("WARNING", 1)


def test_two_refreshers_racing_for_one_subscription_refresh_it_once(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    sid = connected(admin, browser)
    expire_token(services, sid, seconds_left=60)
    calls_before = zoho.token_call_count
    zoho.set_latency(0.5)
    start = threading.Barrier(2)
    outcomes: list[RefreshResult] = []

    def racer() -> None:
        start.wait()
        outcomes.append(refresh.refresh(services, sid).result)

    racers = [threading.Thread(target=racer) for _ in range(2)]
    for thread in racers:
        thread.start()
    for thread in racers:
        thread.join()

    assert sorted(outcomes) == sorted([RefreshResult.REFRESHED, RefreshResult.BUSY])
    assert zoho.token_call_count == calls_before + 1
    # A third refresher that saw it due before, but gets the lease after: it uses the new token.
    zoho.set_latency(0)
    assert refresh.refresh(services, sid).result == RefreshResult.ALREADY_FRESH
    assert zoho.token_call_count == calls_before + 1


def test_many_racers_for_one_lease_take_it_once(
    admin: httpx.Client, browser: httpx.Client, services: Services
) -> None:
    """The lease is one conditional write; whoever loses the race sees it taken, as in DynamoDB."""
    sid = connected(admin, browser)
    racers, rounds = 8, 20
    winners: list[list[str]] = [[] for _ in range(rounds)]
    barrier = threading.Barrier(racers, timeout=30)

    def racer(index: int) -> None:
        for round_winners in winners:
            barrier.wait()
            owner = f"racer:{index}"
            if services.subscriptions.acquire_lease(sid, owner=owner, now=int(time.time()), seconds=60):
                round_winners.append(owner)
            barrier.wait()
            services.subscriptions.release_lease(sid, owner=owner)

    # Switch threads as often as the interpreter allows, so a gap between check and write shows.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=racer, args=(index,)) for index in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)

    assert [len(round_winners) for round_winners in winners] == [1] * rounds


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("server_error", "http_500"),
        ("unavailable", "http_503"),
        ("timeout", "timeout"),
        ("rate_limited", "rate_limited"),
    ],
)
def test_zoho_down_for_a_while_backs_off_then_recovers_without_anyone_acting(
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    services: Services,
    announcements: Announcements,
    fault: str,
    error: str,
) -> None:
    sid = connected(admin, browser)
    before = stored_secret(services, sid)
    expire_token(services, sid, seconds_left=60)
    zoho.inject_fault(fault, count=2)

    started = int(time.time())
    first = refresh.refresh(services, sid)
    ended = int(time.time())
    expire_token(services, sid, seconds_left=60)
    second = refresh.refresh(services, sid)

    assert first.result == second.result == RefreshResult.FAILED
    # The token had a minute left: the retry comes in a minute (the backoff's floor), while it works.
    assert first.next_attempt_at is not None
    assert started + 60 <= first.next_attempt_at.timestamp() <= ended + 60
    view = _view(admin, sid)
    assert view["status"] == "connected"  # transient: no re-authentication asked for
    assert view["failing_days"] == 1  # counted at most once a day
    assert view["last_error"] == error
    after = stored_secret(services, sid)
    assert (after["access_token"], after["refresh_token"]) == (
        before["access_token"],
        before["refresh_token"],
    )
    expire_token(services, sid, seconds_left=60)

    recovered = refresh.refresh(services, sid)

    assert recovered.result == RefreshResult.REFRESHED
    view = _view(admin, sid)
    assert view["failing_days"] == 0
    assert view["last_error"] is None
    assert announcements.read() == []


def test_failing_on_too_many_days_asks_for_re_authentication_and_announces_it(
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    services: Services,
    announcements: Announcements,
) -> None:
    sid = connected(admin, browser)
    expire_token(services, sid, seconds_left=60)
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    boto3.client("dynamodb").update_item(
        TableName=services.settings.subscriptions_table,
        Key={"pk": {"S": f"sub#{sid}"}},
        UpdateExpression="SET failing_days = :days, last_failure_day = :day, consecutive_failures = :n",
        ExpressionAttributeValues={
            ":days": {"N": str(services.settings.max_failing_days - 1)},
            ":day": {"S": yesterday},
            ":n": {"N": "20"},
        },
    )
    zoho.inject_fault("unavailable")

    outcome = refresh.refresh(services, sid)

    assert outcome.result == RefreshResult.NEEDS_REAUTHENTICATION
    assert _view(admin, sid)["status"] == "needs_reauthentication"
    [event] = announcements.read()
    assert event["detail-type"] == "SubscriptionNeedsReauthentication"
    assert event["detail"]["failing_days"] == services.settings.max_failing_days


def test_a_revoked_refresh_token_flags_the_subscription_at_once_and_reconnecting_recovers_it(
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    services: Services,
    announcements: Announcements,
) -> None:
    sid = connected(admin, browser, name="Revoked Co")
    secret = stored_secret(services, sid)
    expire_token(services, sid, seconds_left=60)
    zoho.revoke_all()

    outcome = refresh.refresh(services, sid)

    assert outcome.result == RefreshResult.NEEDS_REAUTHENTICATION
    assert outcome.error == "invalid_code"
    view = _view(admin, sid)
    assert view["status"] == "needs_reauthentication"
    assert view["next_refresh_at"] is None  # out of the refresh index: the sweep leaves it alone
    assert sid not in list(services.subscriptions.due_for_refresh(due_before=int(time.time()) + 10**6))
    [event] = announcements.read()
    assert event["source"] == "zoho-broker"
    assert event["detail-type"] == "SubscriptionNeedsReauthentication"
    assert event["detail"]["subscription_id"] == sid
    assert event["detail"]["name"] == "Revoked Co"
    assert event["detail"]["reason"] == "invalid_code"
    assert event["detail"]["stage"] == "dev"
    assert secret["refresh_token"] not in json.dumps(event)
    # The token route says what to do instead of handing out a dead token.
    answer = admin.get(f"/admin/subscriptions/{sid}/token")
    assert answer.status_code == 409
    assert "re-authentication" in answer.json()["message"]

    assert connect(admin, browser, sid, data_centre="eu").status_code == 200

    assert _view(admin, sid)["status"] == "connected"
    [recovered] = announcements.read()[1:]
    assert recovered["detail-type"] == "SubscriptionRecovered"
    assert recovered["detail"]["subscription_id"] == sid


def test_a_refresh_answer_without_api_domain_keeps_the_stored_one(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    sid = connected(admin, browser)
    before = stored_secret(services, sid)
    expire_token(services, sid, seconds_left=60)
    zoho.inject_fault("no_api_domain")

    assert refresh.refresh(services, sid).result == RefreshResult.REFRESHED

    after = stored_secret(services, sid)
    assert after["api_domain"] == before["api_domain"] == zoho.accounts_servers["eu"]
    assert after["refresh_token"] == before["refresh_token"]  # Zoho's refresh answer never has one
    assert after["access_token"] != before["access_token"]


def test_a_refresh_answer_naming_another_api_domain_replaces_the_stored_one(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    # Given a connection whose stored API domain Zoho no longer answers with
    sid = connected(admin, browser)
    edit_secret(services, sid, api_domain="https://www.zohoapis.example")
    expire_token(services, sid, seconds_left=60)

    assert refresh.refresh(services, sid).result == RefreshResult.REFRESHED

    # Then the API domain of Zoho's answer is what the secret and the subscription hold from now on
    assert stored_secret(services, sid)["api_domain"] == zoho.accounts_servers["eu"]
    assert _view(admin, sid)["api_domain"] == zoho.accounts_servers["eu"]


def _invoke(function_id: str, event: dict[str, Any]) -> Any:
    handler = import_handler(function_entry(TEMPLATE, function_id), ROOT)
    return handler(event, LambdaContext.for_function(function_id))


def test_the_worker_reports_only_the_messages_that_failed(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    good = connected(admin, browser, name="Good")
    fresh = connected(admin, browser, name="Fresh")
    expire_token(services, good, seconds_left=60)
    tokens = {sid: stored_secret(services, sid)["access_token"] for sid in (good, fresh)}
    bodies = [
        json.dumps({"subscription_id": good}),
        json.dumps({"subscription_id": fresh}),
        json.dumps({"subscription_id": "sub_0000000000000000"}),  # deleted meanwhile: dropped, not failed
        "not json",
        json.dumps({"subscription": good}),
    ]
    messages = [
        {"MessageId": f"m{index}", "ReceiptHandle": f"r{index}", "Body": body}
        for index, body in enumerate(bodies)
    ]

    answer = _invoke(
        "RefreshWorkerFunction", sqs_event(messages, "arn:aws:sqs:eu-west-1:123456789012:q", "eu-west-1")
    )

    assert sorted(item["itemIdentifier"] for item in answer["batchItemFailures"]) == ["m3", "m4"]
    assert stored_secret(services, good)["access_token"] != tokens[good]
    assert stored_secret(services, fresh)["access_token"] == tokens[fresh]
    assert zoho.token_call_count == 3  # two code exchanges and one refresh: the fresh one was left alone


def test_the_scheduled_sweep_finds_due_subscriptions_by_index_and_fans_out_through_sqs(
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    services: Services,
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    due = [connected(admin, browser, name=f"Due {n}") for n in range(3)]
    not_due = connected(admin, browser, name="Not due")
    never_connected = create_subscription(admin, name="Never connected")["subscription_id"]
    for sid in due:
        expire_token(services, sid, seconds_left=120)
    monkeypatch.setattr(services.settings, "refresh_inline_limit", 1)
    before = {sid: stored_secret(services, sid)["access_token"] for sid in [*due, not_due]}
    scheduler = LocalScheduler(TEMPLATE, stack, ROOT, interval_seconds=3600)

    [summary] = scheduler.run_schedules_once()
    handled = scheduler.drain_queues_once()

    assert summary == {"due": 3, "refreshed_inline": 0, "queued": 3}
    assert handled == 3
    for sid in due:
        assert stored_secret(services, sid)["access_token"] != before[sid]
    assert stored_secret(services, not_due)["access_token"] == before[not_due]
    assert _view(admin, never_connected)["status"] == "not_connected"
    dead_letters = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.physical_ids["RefreshDeadLetterQueue"], AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert dead_letters["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_a_small_sweep_refreshes_inline(
    admin: httpx.Client, browser: httpx.Client, services: Services, stack: Stack
) -> None:
    sid = connected(admin, browser)
    expire_token(services, sid, seconds_left=120)

    summary = _invoke("RefresherFunction", {"source": "aws.events", "detail-type": "Scheduled Event"})

    assert summary == {"due": 1, "refreshed_inline": 1, "queued": 0}
    view = _view(admin, sid)
    expires_at = datetime.fromisoformat(view["access_token_expires_at"])
    margin = services.settings.refresh_margin_seconds
    assert datetime.fromisoformat(view["next_refresh_at"]).timestamp() == schedule.phase_point(
        expires_at, margin, subscription_id=sid
    )
    assert list(services.subscriptions.due_for_refresh(due_before=int(time.time()))) == []


def test_token_vending_hands_out_a_fresh_token_and_refreshes_only_when_needed(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    sid = connected(admin, browser)
    calls = zoho.token_call_count

    fresh = admin.get(f"/admin/subscriptions/{sid}/token")

    assert fresh.status_code == 200
    body = fresh.json()
    assert body["access_token"] == stored_secret(services, sid)["access_token"]
    assert body["api_domain"] == zoho.accounts_servers["eu"]
    assert body["data_centre"] == "eu"
    assert zoho.token_call_count == calls  # no refresh on a read: Zoho keeps only 30 tokens alive
    expire_token(services, sid, seconds_left=120)  # inside the five-minute margin

    renewed = admin.get(f"/admin/subscriptions/{sid}/token").json()

    assert renewed["access_token"] != body["access_token"]
    assert zoho.token_call_count == calls + 1
    assert datetime.fromisoformat(renewed["expires_at"]) > datetime.now(UTC) + timedelta(minutes=50)
    assert _works(zoho, "eu", renewed["access_token"])


def test_token_vending_refuses_subscriptions_that_are_notconnected(admin: httpx.Client) -> None:
    sid = create_subscription(admin)["subscription_id"]

    answer = admin.get(f"/admin/subscriptions/{sid}/token")

    assert refusal(answer) == (
        409,
        "not_connected",
        "The subscription is not connected yet: send a connect link.",
    )
    assert admin.get("/admin/subscriptions/sub_0000000000000000/token").status_code == 404
    assert admin.post(f"/admin/subscriptions/{sid}/refresh").status_code == 409


def test_refresh_now_forces_a_refresh(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    sid = connected(admin, browser)
    before = stored_secret(services, sid)["access_token"]

    answer = admin.post(f"/admin/subscriptions/{sid}/refresh")

    assert answer.status_code == 200
    assert answer.json()["result"] == "refreshed"
    assert stored_secret(services, sid)["access_token"] != before


def test_revoke_disconnects_at_zoho_and_keeps_the_subscription_for_reconnecting(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    sid = connected(admin, browser)
    old = stored_secret(services, sid)

    answer = admin.post(f"/admin/subscriptions/{sid}/revoke")

    assert answer.status_code == 200
    assert answer.json()["status"] == "not_connected"
    assert answer.json()["tokens"] == {"access_token": None, "refresh_token": None}
    revokes = [r for r in zoho.requests if r.path == "/oauth/v2/token/revoke"]
    assert [r.data_centre for r in revokes] == ["eu"]
    assert not _works(zoho, "eu", old["access_token"])
    stored = stored_secret(services, sid)
    assert stored["refresh_token"] is None
    assert stored["client_secret"] == old["client_secret"]
    assert connect(admin, browser, sid, data_centre="us").status_code == 200
    assert _view(admin, sid)["data_centre"] == "us"


def test_revoke_when_zoho_is_down_disconnects_and_the_refresher_revokes_later(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    sid = connected(admin, browser)
    before = stored_secret(services, sid)
    zoho.inject_fault("server_error")

    answer = admin.post(f"/admin/subscriptions/{sid}/revoke")

    assert answer.status_code == 200
    assert answer.json()["status"] == "not_connected"
    assert answer.json()["revocation_pending"] is True
    assert _works(zoho, "eu", before["access_token"])  # Zoho never saw the revocation
    assert admin.get(f"/admin/subscriptions/{sid}/token").json()["error"] == "not_connected"
    assert _view(admin, sid)["next_refresh_at"] is not None  # the refresher comes back for it

    refresh.refresh(services, sid)  # what the sweep runs once that time has come

    assert not _works(zoho, "eu", before["access_token"])
    assert _view(admin, sid)["revocation_pending"] is False
    assert stored_secret(services, sid)["pending_revocations"] == []


def test_reconnecting_revokes_the_replaced_refresh_token(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    sid = connected(admin, browser)
    first = stored_secret(services, sid)

    assert connect(admin, browser, sid, data_centre="eu").status_code == 200

    second = stored_secret(services, sid)
    assert second["refresh_token"] != first["refresh_token"]
    assert [p["data_centre"] for p in second["pending_revocations"]] == ["eu"]
    refresh.sweep(services)  # the reconnected subscription is due at once: the refresher revokes

    revoked = [r for r in zoho.requests if r.path == "/oauth/v2/token/revoke"]
    assert len(revoked) == 1
    assert not _works(zoho, "eu", first["access_token"])
    assert _works(zoho, "eu", second["access_token"])
    assert stored_secret(services, sid)["pending_revocations"] == []
    assert _view(admin, sid)["next_refresh_at"] > datetime.now(UTC).isoformat()


def test_deleting_a_connected_subscription_revokes_its_refresh_token_at_zoho(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    sid = connected(admin, browser)
    access_token = stored_secret(services, sid)["access_token"]

    assert admin.delete(f"/admin/subscriptions/{sid}").status_code == 204

    assert [r.data_centre for r in zoho.requests if r.path == "/oauth/v2/token/revoke"] == ["eu"]
    assert not _works(zoho, "eu", access_token)


def test_refresh_now_says_when_zoho_fails_instead_of_answering_ok(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    sid = connected(admin, browser)
    zoho.inject_fault("unavailable")

    failed = admin.post(f"/admin/subscriptions/{sid}/refresh")

    assert failed.status_code == 503  # Zoho failing is a passing condition: retry
    assert "http_503" in failed.json()["message"]
    zoho.revoke_all()
    refused = admin.post(f"/admin/subscriptions/{sid}/refresh")
    assert refused.status_code == 409
    assert "re-authentication" in refused.json()["message"]


def test_one_broken_subscription_does_not_stop_the_sweep_refreshing_the_others(
    admin: httpx.Client, browser: httpx.Client, services: Services
) -> None:
    broken = connected(admin, browser, name="Broken")
    healthy = connected(admin, browser, name="Healthy")
    for sid in (broken, healthy):
        expire_token(services, sid, seconds_left=120)
    before = stored_secret(services, healthy)["access_token"]
    boto3.client("secretsmanager").put_secret_value(
        SecretId=services.secrets.name_for(broken), SecretString="{"
    )

    summary = _invoke("RefresherFunction", {"source": "aws.events", "detail-type": "Scheduled Event"})

    assert summary == {"due": 2, "refreshed_inline": 1, "queued": 0}
    assert stored_secret(services, healthy)["access_token"] != before
    # and the broken one is flagged, saying why (the API answers 409 secret_unreadable for it)
    flagged = services.subscriptions.require(broken)
    assert (flagged.status, flagged.last_error) == ("needs_reauthentication", "secret_unreadable")
    assert admin.get(f"/admin/subscriptions/{broken}").json()["error"] == "secret_unreadable"


@pytest.mark.parametrize("missing", ["the refresh token", "the data centre"])
def test_a_connection_missing_half_of_what_a_refresh_needs_is_skipped_without_calling_zoho(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services, missing: str
) -> None:
    # Given a connected subscription whose secret lost its refresh token, or whose item its data centre
    # (written by hand, or half of a disconnection)
    sid = connected(admin, browser)
    if missing == "the refresh token":
        edit_secret(services, sid, refresh_token=None)
    else:
        boto3.client("dynamodb").update_item(
            TableName=services.settings.subscriptions_table,
            Key={"pk": {"S": f"sub#{sid}"}},
            UpdateExpression="REMOVE data_centre",
        )
    calls = zoho.token_call_count

    # When the refresher visits it
    with counted_calls(aws.dynamodb(), "UpdateItem") as writes:
        outcome = refresh.refresh(services, sid, force=True)

    # Then Zoho is not asked for a token, and the subscription leaves the refresh index in the write
    # that lets the lease go (two writes in all)
    assert (outcome.result, outcome.error) == (RefreshResult.SKIPPED, "not connected")
    assert zoho.token_call_count == calls
    assert len(writes) == 2
    assert sid not in set(services.subscriptions.due_for_refresh(due_before=2**40))

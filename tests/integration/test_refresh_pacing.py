"""The refresher at Secrets Manager's write quota: the shared write budget, throttled writes that keep
the token Zoho minted, queued messages that respect the schedule, lost leases and failed result
writes, and an announcement EventBridge refuses. AWS in moto, Zoho's stand-in over real HTTP; waits run on a stepping clock, not in real time."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import boto3
import httpx
import pytest
from aws_calls import failing_once, on_call
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from botocore.exceptions import ClientError
from flow import connected, logged_once, refusal
from stored import edit_secret, expire_token, stored_secret, take_over_lease

from broker_local.scheduler import sqs_event
from broker_local.zoho_standin import ZohoStandIn
from tests.clocks import Jitter, VirtualClock
from tests.integration.test_refresh import _invoke, _view, _works
from zoho_broker.logic import refresh, schedule
from zoho_broker.models import RefreshResult
from zoho_broker.observability import metrics
from zoho_broker.services import Services, get_services
from zoho_broker.store import aws


class SteppingClock:
    """Real time plus whatever was slept: waits take no real time, and DynamoDB still sees real
    epoch seconds."""

    def __init__(self) -> None:
        self.slept = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        return time.time() + self.slept

    def monotonic(self) -> float:
        return time.monotonic() + self.slept

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept += max(0.0, seconds)


@pytest.fixture
def services(gateway: Any) -> Services:
    found = get_services()
    found.clock = SteppingClock()
    return found


def _throttled(operation: str = "PutSecretValue") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        operation,
    )


def _always_throttled(**_: Any) -> None:
    raise _throttled()


class Refusals(ExitStack):
    """Makes the broker's own AWS clients refuse chosen calls, until ``close()`` or the test's end."""

    def on(self, client: Any, operation: str, hook: Any) -> None:
        """``hook(params=...)`` sees the call's parameters before the call is made; raising refuses it."""
        self.enter_context(on_call(client, operation, hook, name="refusal"))


@pytest.fixture
def refusals() -> Iterator[Refusals]:
    with Refusals() as made:
        yield made


def _due_record(services: Services, subscription_id: str) -> dict[str, Any]:
    item = boto3.client("dynamodb").get_item(
        TableName=services.settings.subscriptions_table, Key={"pk": {"S": f"sub#{subscription_id}"}}
    )["Item"]
    return {key: next(iter(value.values())) for key, value in item.items()}


def test_throttled_writes_keep_the_token_zoho_minted_and_write_it_later(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services, refusals: Refusals
) -> None:
    sid = connected(admin, browser)
    expire_token(services, sid, seconds_left=120)
    before = stored_secret(services, sid)
    calls_before = zoho.token_call_count
    attempts: list[int] = []

    def throttle_three_times(**_: Any) -> None:
        attempts.append(1)
        if len(attempts) <= 3:
            raise _throttled()

    refusals.on(aws.secretsmanager(), "PutSecretValue", throttle_three_times)
    metrics.clear_metrics()

    outcome = refresh.refresh(services, sid)
    throttled = dict(metrics.metric_set["SecretWriteThrottled"])  # before an admin call flushes them

    assert outcome.result == RefreshResult.REFRESHED
    assert len(attempts) == 4
    assert (throttled["Unit"], throttled["Value"]) == ("Count", [1.0, 1.0, 1.0])  # one per throttled write
    assert zoho.token_call_count == calls_before + 1  # one token minted, and that one is stored
    after = stored_secret(services, sid)
    assert after["access_token"] != before["access_token"]
    assert _works(zoho, "eu", after["access_token"])
    view = _view(admin, sid)
    assert (view["failing_days"], view["last_error"]) == (0, None)


def test_writes_throttled_for_longer_are_deferred_without_counting_a_failing_day(
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    services: Services,
    refusals: Refusals,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    sid = connected(admin, browser)
    expire_token(services, sid, seconds_left=600)
    before = stored_secret(services, sid)
    metrics.clear_metrics()

    refusals.on(aws.secretsmanager(), "PutSecretValue", _always_throttled)
    outcome = refresh.refresh(services, sid)
    deferrals = dict(metrics.metric_set["RefreshDeferred"])  # before an admin call flushes them
    refusals.close()

    assert outcome.result == RefreshResult.DEFERRED
    assert outcome.error == "secret_write_throttled"
    assert (deferrals["Unit"], deferrals["Value"]) == ("Count", [1.0])
    assert outcome.next_attempt_at == datetime.fromisoformat(_view(admin, sid)["next_refresh_at"])
    assert _due_record(services, sid)["consecutive_failures"] == "1"  # a second deferral waits longer
    formatter = LambdaPowertoolsFormatter()
    [line] = [
        json.loads(formatter.format(record))
        for record in caplog.records
        if record.getMessage() == "secret write held back; will retry"
    ]
    assert (line["level"], line["subscription_id"], line["reason"]) == (
        "WARNING",
        sid,
        "secret_write_throttled",
    )
    assert stored_secret(services, sid) == before  # the previous token stays, still good for ten minutes
    assert _works(zoho, "eu", before["access_token"])
    view = _view(admin, sid)
    assert view["status"] == "connected"
    assert view["failing_days"] == 0
    assert view["last_error"] == "secret_write_throttled"
    retry_in = datetime.fromisoformat(view["next_refresh_at"]) - datetime.fromtimestamp(
        services.clock.time(), UTC
    )
    base = services.settings.retry_base_seconds
    assert timedelta(seconds=base - 5) <= retry_in <= timedelta(seconds=2 * base)
    expire_token(services, sid, seconds_left=600)

    assert refresh.refresh(services, sid).result == RefreshResult.REFRESHED
    assert _view(admin, sid)["last_error"] is None


def test_a_long_backoff_of_deferred_writes_still_retries_before_the_token_runs_out(
    admin: httpx.Client,
    browser: httpx.Client,
    services: Services,
    refusals: Refusals,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sid = connected(admin, browser)
    expire_token(services, sid, seconds_left=1200)
    # Deferred many times already: the backoff's draw alone would wait the full hour (its cap).
    boto3.client("dynamodb").update_item(
        TableName=services.settings.subscriptions_table,
        Key={"pk": {"S": f"sub#{sid}"}},
        UpdateExpression="SET consecutive_failures = :n",
        ExpressionAttributeValues={":n": {"N": "6"}},
    )
    monkeypatch.setattr(schedule, "random", Jitter(highest=True))

    refusals.on(aws.secretsmanager(), "PutSecretValue", _always_throttled)
    outcome = refresh.refresh(services, sid, force=True)
    refusals.close()

    assert outcome.result == RefreshResult.DEFERRED
    view = _view(admin, sid)
    lead = timedelta(seconds=schedule.EXPIRY_LEAD_SECONDS)
    expires_at = datetime.fromisoformat(view["access_token_expires_at"])
    assert datetime.fromisoformat(view["next_refresh_at"]) <= expires_at - lead


def test_an_announcement_eventbridge_refuses_is_logged_with_its_detail_type(
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    services: Services,
    refusals: Refusals,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    sid = connected(admin, browser)
    zoho.revoke_all()

    def refused(**_: Any) -> None:
        raise _throttled("PutEvents")

    refusals.on(aws.events(), "PutEvents", refused)
    outcome = refresh.refresh(services, sid, force=True)

    assert outcome.result == RefreshResult.NEEDS_REAUTHENTICATION
    assert _view(admin, sid)["status"] == "needs_reauthentication"  # the refusal undid nothing
    formatter = LambdaPowertoolsFormatter()
    [line] = [
        json.loads(formatter.format(record))
        for record in caplog.records
        if record.getMessage() == "EventBridge did not take the event"
    ]
    assert line["level"] == "ERROR"
    assert line["detail_type"] == "SubscriptionNeedsReauthentication"


def test_an_announcement_eventbridge_answers_with_a_failed_entry_is_logged_and_counted(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    # Given a subscription Zoho no longer honours, and EventBridge answering 200 with its one entry
    # failed (as it does per entry, for example when throttled inside)
    sid = connected(admin, browser)
    zoho.revoke_all()

    def failed_entry(parsed: dict[str, Any], **_: Any) -> None:
        parsed["FailedEntryCount"] = 1
        parsed["Entries"] = [{"ErrorCode": "InternalFailure", "ErrorMessage": "injected by the test"}]

    metrics.clear_metrics()
    with on_call(aws.events(), "PutEvents", failed_entry, name="failed-entry", stage="after-call"):
        outcome = refresh.refresh(services, sid, force=True)
        failures = dict(metrics.metric_set).get("AnnouncementFailed")

    # Then the flag stands, and the lost event is logged and counted
    assert outcome.result == RefreshResult.NEEDS_REAUTHENTICATION
    assert _view(admin, sid)["status"] == "needs_reauthentication"
    assert failures is not None and (failures["Unit"], failures["Value"]) == ("Count", [1.0])


def test_a_refresh_while_the_write_budget_fails_still_stores_the_token_and_logs_which_subscription(
    admin: httpx.Client, browser: httpx.Client, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a token about to run out, and the write budget's table failing (a pacing aid, not a gate)
    sid = connected(admin, browser)
    expire_token(services, sid, seconds_left=120)
    before = stored_secret(services, sid)
    budget = services.settings.write_budget_table

    # When the refresher refreshes it
    with failing_once(
        aws.dynamodb(),
        "UpdateItem",
        "ProvisionedThroughputExceededException",
        when=lambda p: p["TableName"] == budget,
    ) as failed:
        outcome = refresh.refresh(services, sid)

    # Then the new token is stored all the same, and the operator's log says whose write went unpaced
    assert failed and outcome.result == RefreshResult.REFRESHED
    assert stored_secret(services, sid)["access_token"] != before["access_token"]
    line = logged_once(caplog, "write budget unavailable; writing unpaced")
    assert line["subscription_id"] == sid


def test_a_write_refused_for_another_reason_is_a_failure_that_keeps_the_old_secret(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services, refusals: Refusals
) -> None:
    sid = connected(admin, browser)
    expire_token(services, sid, seconds_left=120)
    before = stored_secret(services, sid)

    def denied(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutSecretValue")

    refusals.on(aws.secretsmanager(), "PutSecretValue", denied)

    outcome = refresh.refresh(services, sid)

    assert (outcome.result, outcome.error) == (RefreshResult.FAILED, "secret_write_failed")
    assert stored_secret(services, sid) == before
    assert _view(admin, sid)["failing_days"] == 1


def test_many_concurrent_refreshers_never_write_more_than_the_budget_in_one_second(
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    services: Services,
    refusals: Refusals,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    budget, workers = 2, 8
    monkeypatch.setattr(services.settings, "secret_writes_per_second", budget)
    services.clock = SteppingClock()  # shared by the workers, as the region's second is
    # One API Console client each: Zoho grants a client only a few codes a minute.
    due = [
        connected(admin, browser, name=f"Paced {n}", client_id=f"1000.PACED{n:014d}") for n in range(workers)
    ]
    for sid in due:
        expire_token(services, sid, seconds_left=600)
    calls_before = zoho.token_call_count
    # Each write is counted in the window of the slot its thread took just before it.
    counter = services.write_budget
    last_slot: dict[int, int | None] = {}
    writes_per_window: Counter[int] = Counter()
    refused: list[int] = []
    lock = threading.Lock()
    take = counter.take

    def take_and_note(window: int, limit: int) -> bool:
        granted = take(window, limit)
        with lock:
            if granted:
                last_slot[threading.get_ident()] = window
            else:
                refused.append(window)
        return granted

    monkeypatch.setattr(counter, "take", take_and_note)

    def count_write(**_: Any) -> None:
        with lock:
            window = last_slot.pop(threading.get_ident(), None)
            assert window is not None, "a secret write without a slot"
            writes_per_window[window] += 1

    refusals.on(aws.secretsmanager(), "PutSecretValue", count_write)
    start = threading.Barrier(workers)
    outcomes: list[RefreshResult] = []

    def worker(sid: str) -> None:
        start.wait()
        outcomes.append(refresh.refresh(services, sid).result)

    threads = [threading.Thread(target=worker, args=(sid,)) for sid in due]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes == [RefreshResult.REFRESHED] * workers
    assert sum(writes_per_window.values()) == workers
    assert max(writes_per_window.values()) <= budget
    assert refused, "the workers never competed for a window"
    assert zoho.token_call_count == calls_before + workers


def test_a_redelivered_message_for_a_subscription_in_backoff_does_nothing(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services
) -> None:
    sid = connected(admin, browser)
    expire_token(services, sid, seconds_left=600)
    zoho.inject_fault("unavailable")
    assert refresh.refresh(services, sid).result == RefreshResult.FAILED
    backing_off = _due_record(services, sid)
    secret = stored_secret(services, sid)
    calls = zoho.token_call_count
    message = {"MessageId": "m1", "ReceiptHandle": "r1", "Body": json.dumps({"subscription_id": sid})}

    answer = _invoke(
        "RefreshWorkerFunction", sqs_event([message] * 2, "arn:aws:sqs:eu-west-1:123456789012:q", "eu-west-1")
    )

    assert answer["batchItemFailures"] == []
    assert zoho.token_call_count == calls
    assert stored_secret(services, sid) == secret
    after = _due_record(services, sid)
    for field in ("refresh_due_at", "consecutive_failures", "failing_days", "last_error"):
        assert after[field] == backing_off[field]


def test_a_lost_lease_is_reported_as_such_and_the_new_token_is_kept(
    admin: httpx.Client,
    browser: httpx.Client,
    zoho: ZohoStandIn,
    services: Services,
    refusals: Refusals,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sid = connected(admin, browser)
    expire_token(services, sid, seconds_left=120)

    def lease_taken_over(**_: Any) -> None:
        # The lease ran out while Zoho answered slowly, and another refresher took it.
        take_over_lease(services, sid)

    refusals.on(aws.secretsmanager(), "PutSecretValue", lease_taken_over)

    outcome = refresh.refresh(services, sid)

    assert outcome.result == RefreshResult.LEASE_LOST
    assert _view(admin, sid)["status"] == "connected"  # not taken for a deleted subscription
    lost = "lease lost before the result was recorded; its new holder finishes"
    line = logged_once(caplog, lost)
    assert line["subscription_id"] == sid
    assert _works(zoho, "eu", stored_secret(services, sid)["access_token"])


def test_a_subscription_deleted_during_a_refresh_is_still_reported_as_gone(
    admin: httpx.Client, browser: httpx.Client, services: Services, refusals: Refusals
) -> None:
    sid = connected(admin, browser)
    expire_token(services, sid, seconds_left=120)
    table = services.settings.subscriptions_table

    def deleted(**_: Any) -> None:
        boto3.client("dynamodb").delete_item(TableName=table, Key={"pk": {"S": f"sub#{sid}"}})

    refusals.on(aws.secretsmanager(), "PutSecretValue", deleted)
    message = {"MessageId": "m1", "ReceiptHandle": "r1", "Body": json.dumps({"subscription_id": sid})}

    answer = _invoke(
        "RefreshWorkerFunction", sqs_event([message], "arn:aws:sqs:eu-west-1:123456789012:q", "eu-west-1")
    )

    assert answer["batchItemFailures"] == []  # dropped, not retried: there is nothing to refresh


def test_a_failed_result_write_is_retried_and_never_leaves_the_subscription_due_now(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services, refusals: Refusals
) -> None:
    sid = connected(admin, browser)
    expire_token(services, sid, seconds_left=120)
    written: list[int] = []
    refused: list[int] = []

    def after_the_secret(**_: Any) -> None:
        written.append(1)

    def refuse_the_result_twice(params: dict[str, Any], **_: Any) -> None:
        # The result write is the update that sets last_refreshed_at; the lease and budget are others.
        if written and "last_refreshed_at" in params.get("UpdateExpression", "") and len(refused) < 2:
            refused.append(1)
            raise _throttled("UpdateItem")

    refusals.on(aws.secretsmanager(), "PutSecretValue", after_the_secret)
    refusals.on(aws.dynamodb(), "UpdateItem", refuse_the_result_twice)

    outcome = refresh.refresh(services, sid)

    assert outcome.result == RefreshResult.REFRESHED
    assert len(refused) == 2
    view = _view(admin, sid)
    refreshed_at = datetime.fromisoformat(view["last_refreshed_at"])
    # Due again at its point of the next period, after this refresh: not left due now.
    assert datetime.fromisoformat(view["next_refresh_at"]) > refreshed_at
    assert sid not in list(services.subscriptions.due_for_refresh(due_before=int(refreshed_at.timestamp())))


def test_a_result_write_that_keeps_failing_is_put_right_by_the_next_visit(
    admin: httpx.Client, browser: httpx.Client, zoho: ZohoStandIn, services: Services, refusals: Refusals
) -> None:
    # The next visit puts it right without a new token from Zoho.
    sid = connected(admin, browser)
    expire_token(services, sid, seconds_left=120)

    def refuse_results(params: dict[str, Any], **_: Any) -> None:
        if "last_refreshed_at" in params.get("UpdateExpression", ""):
            raise _throttled("UpdateItem")

    refusals.on(aws.dynamodb(), "UpdateItem", refuse_results)
    with pytest.raises(ClientError):
        refresh.refresh(services, sid)
    refusals.close()
    calls = zoho.token_call_count
    boto3.client("dynamodb").update_item(  # the lease runs out (60 s)
        TableName=services.settings.subscriptions_table,
        Key={"pk": {"S": f"sub#{sid}"}},
        UpdateExpression="REMOVE lease_owner, lease_expires_at",
    )

    visit_started = time.time()
    visit = refresh.refresh_queued(services, sid)

    assert visit.result == RefreshResult.ALREADY_FRESH
    assert zoho.token_call_count == calls
    visited_at = int(visit_started)
    assert sid not in list(services.subscriptions.due_for_refresh(due_before=visited_at))


def test_refresh_now_while_secrets_manager_refuses_writes_says_try_again_and_keeps_the_token(
    admin: httpx.Client, browser: httpx.Client, services: Services, refusals: Refusals
) -> None:
    # Given a connected subscription, and Secrets Manager throttling every write
    sid = connected(admin, browser)
    before = stored_secret(services, sid)

    refusals.on(aws.secretsmanager(), "PutSecretValue", _always_throttled)

    # When an operator forces a refresh
    answer = admin.post(f"/admin/subscriptions/{sid}/refresh")
    refusals.close()

    # Then try again (503), and the stored token is the one it was
    assert refusal(answer) == (
        503,
        "busy",
        "Secrets Manager is busy with other writes; nothing changed, try again in a few seconds.",
    )
    assert stored_secret(services, sid) == before
    assert admin.post(f"/admin/subscriptions/{sid}/refresh").status_code == 200


def test_a_queued_refresh_runs_for_a_subscription_due_this_second_and_skips_one_due_the_next(
    admin: httpx.Client, browser: httpx.Client, services: Services, zoho: ZohoStandIn
) -> None:
    # Given time standing still half-way through a second, and two subscriptions about to run out:
    # one due at this second, one at the next
    now = float(int(time.time())) + 0.5
    services.clock = VirtualClock(now)
    this_second, next_second = connected(admin, browser, name="Now"), connected(admin, browser, name="Next")
    expire_token(services, this_second, seconds_left=120, now=now + 1)  # due at int(now)
    expire_token(services, next_second, seconds_left=120, now=now + 2)  # due at int(now) + 1
    calls = zoho.token_call_count

    # When the worker takes a queued message for each
    ran = refresh.refresh_queued(services, this_second)
    skipped = refresh.refresh_queued(services, next_second)

    # Then the one due now is refreshed, and the other is left for its time
    assert (ran.result, skipped.result) == (RefreshResult.REFRESHED, RefreshResult.NOT_DUE)
    assert zoho.token_call_count == calls + 1


def test_a_token_with_exactly_five_minutes_left_is_refreshed_before_it_is_handed_out(
    admin: httpx.Client,
    browser: httpx.Client,
    services: Services,
    zoho: ZohoStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given time standing still, and a stored token that runs out exactly five minutes from now
    sid = connected(admin, browser)
    now = datetime.now(UTC).replace(microsecond=0)
    services.clock = VirtualClock(now.timestamp())
    monkeypatch.setattr(refresh, "utc_now", lambda: now)
    edit_secret(services, sid, access_token_expires_at=now + timedelta(minutes=5))
    old = stored_secret(services, sid)["access_token"]
    calls = zoho.token_call_count

    # When a sync job asks for a token
    vended = refresh.vend_token(services, sid)

    # Then it gets a new one: a token handed out always has more than five minutes left
    assert zoho.token_call_count == calls + 1
    assert vended.access_token != old
    assert vended.expires_at > now + timedelta(minutes=5)


def test_a_throttled_secret_write_is_tried_again_after_doubling_pauses_until_the_wait_runs_out(
    admin: httpx.Client, browser: httpx.Client, services: Services, refusals: Refusals
) -> None:
    # Given Secrets Manager throttling every write
    sid = connected(admin, browser)
    expire_token(services, sid, seconds_left=600)
    attempts: list[float] = []

    def always(**_: Any) -> None:
        attempts.append(services.clock.time())
        raise _throttled()

    refusals.on(aws.secretsmanager(), "PutSecretValue", always)

    # When the refresher refreshes it (its wait for a write: 20 s)
    outcome = refresh.refresh(services, sid)

    # Then each try waits twice as long as the one before, and none starts a pause past the wait
    assert outcome.result == RefreshResult.DEFERRED
    pauses = [later - earlier for earlier, later in pairwise(attempts)]
    assert pauses == pytest.approx([0.25, 0.5, 1.0, 2.0, 4.0, 8.0], abs=0.2)

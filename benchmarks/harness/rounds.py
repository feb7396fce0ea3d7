"""The measured phase (the sweep, then C worker instances draining the queue) and its verification."""

from __future__ import annotations

import random
import resource
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoho_broker.models import SubscriptionSecret

from .common import DATA_CENTRE, REFRESHER_FUNCTION, REGION, ROOT, WORKER_FUNCTION, Handler
from .instruments import CallCounter, OutputSink, Tally, instrument
from .world import Seeded, World, scan_subscriptions


@dataclass
class RoundResult:
    concurrency: int
    latency: float
    due: int
    queued: int
    refreshed_inline: int
    sweep_seconds: float
    refresh_seconds: float
    cpu_seconds: float
    token_calls: int
    zoho_seconds: float
    function_calls: Counter[tuple[str, str]]
    function_call_seconds: float
    poller_calls: Counter[tuple[str, str]]
    sweep_calls: Counter[tuple[str, str]]
    tally: Tally
    log_bytes: int
    log_lines: int
    max_rss: int
    sweep_peak: int | None = None
    refresh_traced_start: int | None = None
    refresh_peak: int | None = None
    verification: Verification | None = None
    made_due_seconds: float = 0.0

    @property
    def refreshed(self) -> int:
        return self.tally.outcomes.get("refreshed", 0) + self.refreshed_inline

    @property
    def checks(self) -> Verification:
        """The verification, which refresh.py makes after every timed round."""
        assert self.verification is not None
        return self.verification

    @property
    def failed(self) -> int:
        failures = ("failed", "needs_reauthentication")
        return sum(count for name, count in self.tally.outcomes.items() if name in failures or " " in name)


def run_round(
    world: World,
    concurrency: int,
    latency: float,
    sink: OutputSink,
    *,
    trace_memory: bool = False,
    limit: int | None = None,
) -> RoundResult:
    """The sweep, then C instances until the queue is empty (or, with a limit, until that many are done)."""
    import boto3

    from broker_local.functions import function_entry
    from broker_local.gateway import LambdaContext, import_handler
    from broker_local.scheduler import scheduled_event, sqs_event

    refresher = import_handler(function_entry(world.template, REFRESHER_FUNCTION), ROOT)
    tally = Tally()
    workers: list[Handler] = []
    for _ in range(concurrency):  # one import per instance, as each Lambda instance has its own
        handler = import_handler(function_entry(world.template, WORKER_FUNCTION), ROOT)
        instrument(handler, tally)
        workers.append(handler)
    poller_calls = CallCounter()
    pollers = [boto3.session.Session().client("sqs", region_name=REGION) for _ in range(concurrency)]
    for poller in pollers:
        poller_calls.attach(poller)
        world.fast_queue.attach(poller)

    def poll(handler: Handler, sqs: Any) -> None:
        while limit is None or tally.handled < limit:
            began = time.perf_counter()
            answer = sqs.receive_message(
                QueueUrl=world.fast_queue.url,
                MaxNumberOfMessages=world.batch_size,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
            )
            received = time.perf_counter()
            messages = answer.get("Messages", [])
            with tally.lock:
                tally.sqs_seconds += received - began
                tally.message_ids.update(message["MessageId"] for message in messages)
                tally.invocations += 1 if messages else 0
            if not messages:
                return  # nothing visible: the rest are in other instances' hands
            try:
                result = handler(
                    sqs_event(messages, world.fast_queue.arn, REGION),
                    LambdaContext.for_function(WORKER_FUNCTION),
                )
            except Exception as error:  # the invocation failed: its messages come back after the timeout
                with tally.lock:
                    tally.handler_errors[type(error).__name__] += 1
                continue
            finally:
                with tally.lock:
                    tally.handler_seconds += time.perf_counter() - received
            failed = {item["itemIdentifier"] for item in (result or {}).get("batchItemFailures", [])}
            done = [message for message in messages if message["MessageId"] not in failed]
            with tally.lock:
                tally.reported_failures += len(failed)
            if done:
                began = time.perf_counter()
                sqs.delete_message_batch(
                    QueueUrl=world.fast_queue.url,
                    Entries=[
                        {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                        for index, message in enumerate(done)
                    ],
                )
                spent = time.perf_counter() - began
                with tally.lock:
                    tally.sqs_seconds += spent

    world.standin.set_latency(latency)
    tokens_before = world.standin.token_call_count
    world.zoho_timer.take()
    sink.take()
    world.calls.phase = "sweep"
    sweep_peak = refresh_traced_start = refresh_peak = None
    if trace_memory:
        tracemalloc.start()
    cpu_started = time.process_time()
    started = time.perf_counter()
    summary = refresher(
        scheduled_event(REFRESHER_FUNCTION, REGION), LambdaContext.for_function(REFRESHER_FUNCTION)
    )
    swept = time.perf_counter()
    if trace_memory:
        refresh_traced_start, sweep_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
    world.calls.phase = "refresh"
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="worker") as instances:
        list(instances.map(poll, workers, pollers))  # until every instance found the queue empty
    finished = time.perf_counter()
    cpu_seconds = time.process_time() - cpu_started
    if trace_memory:
        refresh_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    world.calls.phase = "after"
    world.standin.set_latency(0)
    log_bytes, log_lines = sink.take()
    function_calls, function_call_seconds = world.calls.take("refresh")
    return RoundResult(
        concurrency=concurrency,
        latency=latency,
        due=int(summary["due"]),
        queued=int(summary["queued"]),
        refreshed_inline=int(summary["refreshed_inline"]),
        sweep_seconds=swept - started,
        refresh_seconds=finished - swept,
        cpu_seconds=cpu_seconds,
        token_calls=world.standin.token_call_count - tokens_before,
        zoho_seconds=world.zoho_timer.take(),
        function_calls=function_calls,
        function_call_seconds=function_call_seconds,
        poller_calls=poller_calls.take("setup")[0],
        sweep_calls=world.calls.take("sweep")[0],
        tally=tally,
        log_bytes=log_bytes,
        log_lines=log_lines,
        max_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        sweep_peak=sweep_peak,
        refresh_traced_start=refresh_traced_start,
        refresh_peak=refresh_peak,
    )


@dataclass
class Verification:
    checked: int = 0
    new_access_token: int = 0
    refresh_token_unchanged: int = 0
    expiry_ahead: int = 0
    whoami_sampled: int = 0
    whoami_accepted: int = 0
    still_due: int = 0
    leases_left: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    queue_visible: int = 0
    queue_in_flight: int = 0
    dead_letters: int = 0
    secrets: dict[str, SubscriptionSecret] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return (
            self.new_access_token == self.checked
            and self.refresh_token_unchanged == self.checked
            and self.expiry_ahead == self.checked
            and self.whoami_accepted == self.whoami_sampled
            and self.still_due == self.leases_left == self.queue_visible == self.queue_in_flight == 0
        )


def verify(
    world: World, seeded: Sequence[Seeded], sample_size: int, rng: random.Random, round_started: int
) -> Verification:
    from tests.whoami import whoami
    from zoho_broker.models import utc_now
    from zoho_broker.store import aws

    services = world.services
    world.calls.phase = "verify"
    result = Verification(checked=len(seeded))
    fresh_after = utc_now() + timedelta(minutes=50)
    for subscription in seeded:
        secret = services.secrets.get(subscription.subscription_id)
        if secret is None:
            continue
        result.secrets[subscription.subscription_id] = secret
        result.new_access_token += (
            bool(secret.access_token) and secret.access_token != subscription.access_token
        )
        result.refresh_token_unchanged += secret.refresh_token == subscription.refresh_token
        result.expiry_ahead += bool(
            secret.access_token_expires_at and secret.access_token_expires_at > fresh_after
        )

    for subscription in rng.sample(list(seeded), min(sample_size, len(seeded))):
        secret = result.secrets.get(subscription.subscription_id)
        result.whoami_sampled += 1
        if secret is None or not secret.access_token:
            continue
        answer = whoami(world.standin.accounts_servers[DATA_CENTRE], secret.access_token)
        result.whoami_accepted += (
            answer.status_code == 200 and answer.json().get("client_id") == subscription.client_id
        )

    # Left due by the round: due before it began. One the round refreshed may be due again within seconds,
    # when its phase point (logic/pacing.py) falls just after the refresh: that is its next refresh, not one missed.
    still_due = services.subscriptions.due_for_refresh(due_before=round_started - 1)
    result.still_due = sum(1 for _ in still_due)
    for item in scan_subscriptions(world, projection="pk, lease_owner, #status, last_error"):
        result.leases_left += "lease_owner" in item
        result.statuses[item.get("status", {}).get("S", "?")] += 1
        if "last_error" in item:
            result.errors[item["last_error"]["S"]] += 1

    attributes = aws.sqs().get_queue_attributes(
        QueueUrl=world.fast_queue.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    result.queue_visible = int(attributes["ApproximateNumberOfMessages"])
    result.queue_in_flight = int(attributes["ApproximateNumberOfMessagesNotVisible"])
    dead = aws.sqs().get_queue_attributes(
        QueueUrl=world.dead_letter_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    result.dead_letters = int(dead["Attributes"]["ApproximateNumberOfMessages"])
    result.dead_letters += len(world.fast_queue.dead_letters)
    world.calls.phase = "after"
    return result

"""The proxy's throttle under concurrent callers in several processes (several Lambda instances), sharing
one DynamoDB: a moto server over HTTP, made atomic per request as DynamoDB is."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from broker_local.provision import session_for
from broker_local.template import load_template, provision
from tests.conftest import ROOT

REGION = "eu-west-1"


def _serve_moto(connection: Any) -> None:
    from moto.server import ThreadedMotoServer

    from broker_local.moto_atomic import make_dynamodb_atomic

    make_dynamodb_atomic()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # werkzeug logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    connection.send(server.get_host_and_port()[1])
    threading.Event().wait()


@pytest.fixture(scope="module")
def throttle_table() -> Iterator[tuple[str, str]]:
    """(endpoint, table name) of the template's ThrottleTable in a moto server of its own process."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=_serve_moto, args=(child,), daemon=True)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{parent.recv()}"
        stack = provision(load_template(ROOT / "template.yaml"), session=session_for(endpoint, REGION))
        yield endpoint, stack.physical_ids["ThrottleTable"]
    finally:
        server.kill()
        server.join(timeout=10)


def _caller_process(
    endpoint: str,
    table: str,
    subscription_id: str,
    limits: tuple[int, int],
    callers: int,
    calls_each: int,
    hold_seconds: float,
    wait_seconds: float,
    results: Any,
) -> None:
    """One Lambda instance: its own Throttle, ``callers`` threads each making calls one after another."""
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
    )
    from zoho_broker.catalogue import Throttling
    from zoho_broker.clock import SystemClock
    from zoho_broker.logic.throttle import Throttle, Throttled
    from zoho_broker.store.throttle import ThrottleStore

    throttle = Throttle(ThrottleStore(table), SystemClock(), slot_seconds=30)
    throttling = Throttling(requests_per_minute=limits[0], max_concurrent_requests=limits[1])
    spans: list[tuple[float, float, int]] = []
    refused: list[float] = []

    def caller() -> None:
        for _ in range(calls_each):
            try:
                turn = throttle.acquire(subscription_id, throttling, wait_seconds=wait_seconds)
            except Throttled as error:
                refused.append(error.retry_after)
                continue
            started = time.time()
            time.sleep(hold_seconds)
            ended = time.time()
            throttle.release(turn)
            spans.append((started, ended, turn.start_us))

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put((spans, refused))


def _run(
    throttle_table: tuple[str, str],
    subscription_id: str,
    *,
    limits: tuple[int, int],
    processes: int,
    callers: int,
    calls_each: int,
    hold_seconds: float,
    wait_seconds: float,
) -> tuple[list[tuple[float, float, int]], list[float]]:
    endpoint, table = throttle_table
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(
            target=_caller_process,
            args=(
                endpoint,
                table,
                subscription_id,
                limits,
                callers,
                calls_each,
                hold_seconds,
                wait_seconds,
                results,
            ),
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    spans: list[tuple[float, float, int]] = []
    refused: list[float] = []
    for _ in workers:
        got_spans, got_refused = results.get(timeout=120)
        spans += got_spans
        refused += got_refused
    for worker in workers:
        worker.join(timeout=10)
    return spans, refused


def _peak_concurrency(spans: list[tuple[float, float, int]]) -> int:
    edges = sorted([(start, 1) for start, _, _ in spans] + [(end, -1) for _, end, _ in spans])
    peak = current = 0
    for _, step in edges:  # an end sorts before a start at the same instant (-1 < 1)
        current += step
        peak = max(peak, current)
    return peak


def test_given_callers_in_four_processes_when_they_wait_for_turns_then_the_rate_holds_and_is_used(
    throttle_table: tuple[str, str],
) -> None:
    # 600 a minute: one start every 100 ms; 4 processes x 4 callers want far more.
    spans, refused = _run(
        throttle_table,
        "sub_rate",
        limits=(600, 5),
        processes=4,
        callers=4,
        calls_each=4,
        hold_seconds=0.05,
        wait_seconds=10,
    )
    assert not refused
    assert len(spans) == 64
    assert _peak_concurrency(spans) <= 5
    granted = sorted(start_us for _, _, start_us in spans)
    gaps = [later - earlier for earlier, later in itertools.pairwise(granted)]
    assert min(gaps) >= 100_000, "two calls were granted starts closer than 60 s / requests_per_minute"
    started = sorted(start for start, _, _ in spans)
    assert all(actual >= turn / 1e6 for actual, turn in zip(started, granted, strict=True))
    # The limiter's grants never exceed the rate; the calls (which start when their turn comes, on a
    # loaded machine a little late) use at least 90% of it.
    assert (len(granted) - 1) / ((granted[-1] - granted[0]) / 1e6) <= 10
    assert (len(started) - 1) / (started[-1] - started[0]) >= 0.9 * 10


def test_given_callers_in_four_processes_when_they_wait_for_slots_then_concurrency_never_exceeds_the_limit(
    throttle_table: tuple[str, str],
) -> None:
    spans, refused = _run(
        throttle_table,
        "sub_concurrency",
        limits=(60_000, 3),
        processes=4,
        callers=3,
        calls_each=3,
        hold_seconds=0.2,
        wait_seconds=10,
    )
    assert not refused
    assert len(spans) == 36
    assert _peak_concurrency(spans) == 3


def test_given_no_wait_when_the_rate_is_used_up_then_callers_are_refused_with_retry_after(
    throttle_table: tuple[str, str],
) -> None:
    spans, refused = _run(
        throttle_table,
        "sub_refused",
        limits=(60, 10),
        processes=3,
        callers=3,
        calls_each=2,
        hold_seconds=0.01,
        wait_seconds=0,
    )
    # One start a second: within the moment they all ask, one or two get through; the rest are told
    # when the next turn comes (under a second each, and never more than the queue ahead).
    assert 1 <= len(spans) <= 2
    assert len(refused) == 18 - len(spans)
    # (a caller that read the clock before the first grant was made waits a few ms longer)
    assert all(0 < after <= len(spans) + 0.1 for after in refused), (refused, len(spans))


def test_given_a_caller_that_died_holding_a_slot_then_its_slot_frees_itself(
    throttle_table: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, table = throttle_table
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    from zoho_broker.catalogue import Throttling
    from zoho_broker.clock import SystemClock
    from zoho_broker.logic.throttle import Throttle, Throttled
    from zoho_broker.store import aws
    from zoho_broker.store.throttle import ThrottleStore

    aws.reset()
    throttling = Throttling(requests_per_minute=6000, max_concurrent_requests=1)
    crashed = Throttle(ThrottleStore(table), SystemClock(), slot_seconds=1.0)
    crashed.acquire("sub_crash", throttling, wait_seconds=0)  # never released: its Lambda died
    survivor = Throttle(ThrottleStore(table), SystemClock(), slot_seconds=30)
    with pytest.raises(Throttled):
        survivor.acquire("sub_crash", throttling, wait_seconds=0)
    time.sleep(1.1)
    turn = survivor.acquire("sub_crash", throttling, wait_seconds=0)
    survivor.release(turn)
    aws.reset()

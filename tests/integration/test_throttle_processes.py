"""The proxy's throttle under concurrent callers in several processes (several Lambda instances), sharing
one DynamoDB: a moto server over HTTP, made atomic per request as DynamoDB is."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

from broker_local.provision import session_for
from broker_local.template import load_template, provision
from tests.conftest import ROOT

REGION = "eu-west-1"


class Span(NamedTuple):
    """One call: when it started and ended (wall clock), its turn (µs) and its claim's owner."""

    started: float
    ended: float
    start_us: int
    owner: str


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
    spans: list[Span] = []
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
            spans.append(Span(started, ended, turn.start_us, turn.owner))

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
) -> tuple[list[Span], list[float]]:
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
    spans: list[Span] = []
    refused: list[float] = []
    for _ in workers:
        got_spans, got_refused = results.get(timeout=120)
        spans += got_spans
        refused += got_refused
    for worker in workers:
        worker.join(timeout=10)
    return spans, refused


def _peak_concurrency(spans: list[Span]) -> int:
    edges = sorted([(span.started, 1) for span in spans] + [(span.ended, -1) for span in spans])
    peak = current = 0
    for _, step in edges:  # an end sorts before a start at the same instant (-1 < 1)
        current += step
        peak = max(peak, current)
    return peak


def test_waiting_callers_in_four_processes_keep_the_rate_and_use_it(
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
    granted = sorted(span.start_us for span in spans)
    gaps = [later - earlier for earlier, later in itertools.pairwise(granted)]
    assert min(gaps) >= 100_000, "two calls were granted starts closer than 60 s / requests_per_minute"
    started = sorted(span.started for span in spans)
    assert all(actual >= turn / 1e6 for actual, turn in zip(started, granted, strict=True))
    # The limiter's grants never exceed the rate; the calls (which start when their turn comes, on a
    # loaded machine a little late) use at least 90% of it.
    assert (len(granted) - 1) / ((granted[-1] - granted[0]) / 1e6) <= 10
    assert (len(started) - 1) / (started[-1] - started[0]) >= 0.9 * 10


def _sample_slots(
    throttle_table: tuple[str, str], key: str, stop: threading.Event
) -> list[tuple[int, set[str]]]:
    """The throttle item's slot holders, read every few ms until ``stop`` is set, each with the moment
    (µs) the read had returned by."""
    endpoint, table = throttle_table
    client = session_for(endpoint, REGION).client("dynamodb")
    samples: list[tuple[int, set[str]]] = []
    while not stop.wait(0.005):
        item = client.get_item(TableName=table, Key={"pk": {"S": f"throttle#{key}"}}).get("Item", {})
        slots = item.get("slots", {}).get("M", {})
        samples.append((time.time_ns() // 1000, set(slots)))
    return samples


def test_callers_waiting_for_their_turn_hold_no_slot(
    throttle_table: tuple[str, str],
) -> None:
    # 1,200 a minute (a turn every 50 ms) and 3 slots: calls of 100 ms leave room for 30 a second, so
    # the rate is the bound. A caller that held its slot while sleeping until its turn would leave
    # fewer slots for calls under way and fall well short of it.
    stop = threading.Event()
    sampled: list[list[tuple[int, set[str]]]] = []
    sampler = threading.Thread(target=lambda: sampled.append(_sample_slots(throttle_table, "sub_few", stop)))
    sampler.start()
    try:
        spans, refused = _run(
            throttle_table,
            "sub_few",
            limits=(1200, 3),
            processes=3,
            callers=4,
            calls_each=6,
            hold_seconds=0.1,
            wait_seconds=10,
        )
    finally:
        stop.set()
        sampler.join()
    assert not refused
    assert len(spans) == 72
    assert _peak_concurrency(spans) <= 3
    granted = sorted(span.start_us for span in spans)
    assert min(later - earlier for earlier, later in itertools.pairwise(granted)) >= 50_000
    started = sorted(span.started for span in spans)
    assert (len(started) - 1) / (started[-1] - started[0]) >= 0.9 * 20
    # No slot was ever held by a caller whose turn had not yet come. (A slot taken too late in its
    # grace is released and its turn given up: its holder, a claim of its own, made no call.)
    turns = {span.owner: span.start_us for span in spans}
    seen = [(moment, owner) for moment, holders in sampled[0] for owner in holders if owner in turns]
    assert len({owner for _, owner in seen}) >= 10, "the sampler saw too few slots to tell"
    early = [(owner, turns[owner] - moment) for moment, owner in seen if turns[owner] > moment]
    assert not early, f"slots held before their turn (owner, µs early): {early}"


def test_callers_in_four_processes_never_exceed_the_concurrency_limit(
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


def test_callers_over_the_rate_without_wait_are_refused_with_retry_after(
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


def test_a_slot_held_by_a_dead_caller_frees_itself(
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

"""The proxy: its overhead over a direct call to Zoho, the throttle's accuracy, and AWS calls per call.

    python benchmarks/proxy.py [--calls 300] [--latency 0,0.1] [--seconds 10] [--callers 50]

The world is `make dev`'s (local/broker_local/runner.py): moto's server over HTTP with the tables and
secrets of template.yaml, the Zoho stand-in's API over HTTP, the local gateway invoking the real
ProxyFunction handler. One subscription is connected through the real consent flow.

1. Overhead: ``--calls`` GETs of CRM's ``org``, direct to the stand-in with the subscription's token and
   through the proxy, interleaved, at each stand-in latency of ``--latency``; median and p99 of both and
   their ratios, measured in the same run. The proxied call includes the local gateway (Python's
   http.server), the handler, the throttle's two DynamoDB requests to moto over HTTP, and the forward.
2. AWS calls per proxied call (the overhead run, warm instance): DynamoDB and Secrets Manager requests
   counted by a botocore hook on the broker's session, divided by the calls made.
3. Throttle accuracy: ``--callers`` concurrent callers (5 processes, as 5 Lambda instances, of
   callers/5 threads) call the stand-in's API back to back for ``--seconds`` through the broker's
   Throttle (its DynamoDB item on the moto server), with a 100 ms Zoho latency, against several limits.
   Printed: the peak concurrency Zoho saw (the stand-in counts calls in flight per organization) against
   ``max_concurrent_requests``; the most starts in any window of W = min(run, 60 s) against
   ``requests_per_minute`` x W / 60; the rate achieved against what the limits allow
   (min(rpm, concurrency / latency)) and against what they allow with calls as long as the slots were
   really held (min(rpm, concurrency / mean hold): Zoho's latency plus HTTP and the throttle's writes);
   DynamoDB requests per call.

Figures come from one run on one machine; the ratios, not the milliseconds, carry over to AWS.
"""

from __future__ import annotations

import argparse
import bisect
import functools
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "broker"), str(ROOT / "local")]

from harness.instruments import CallCounter  # noqa: E402
from harness.local_broker import local_broker, percentile  # noqa: E402
from harness.table import print_table  # noqa: E402

from tests.integration.flow import connect, create_subscription  # noqa: E402

ZOHO_LATENCY_FOR_LIMITS = 0.1
# Zoho CRM's default, a busy one, three at 20/s; the last is bound by its one slot (10/s at 100 ms).
LIMITS = ((100, 10), (600, 25), (1200, 10), (1200, 5), (1200, 1))
PROCESSES = 5


def count_aws_calls() -> CallCounter:
    """Every DynamoDB and Secrets Manager request the broker's handlers make in this process."""
    from zoho_broker.store import aws

    aws.reset()
    counted = CallCounter()
    counted.attach(aws._session())  # the session: every client the handlers make from it
    return counted


def overhead(
    gateway_url: str, standin_url: str, sid: str, token: str, calls: int, zoho: Any, latencies: list[float]
) -> None:
    print("\n1. Overhead of the proxy over a direct call (GET org), interleaved, one run")
    rows = []
    with httpx.Client(timeout=30) as http:
        for latency in latencies:
            zoho.api.set_latency(latency)
            direct: list[float] = []
            proxied: list[float] = []
            for _ in range(calls):
                started = time.perf_counter()
                answer = http.get(
                    f"{standin_url}/crm/v8/org", headers={"Authorization": f"Zoho-oauthtoken {token}"}
                )
                direct.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
                started = time.perf_counter()
                answer = http.get(f"{gateway_url}/proxy/{sid}/org")
                proxied.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
            d50, p50 = statistics.median(direct), statistics.median(proxied)
            d99, p99 = percentile(direct, 0.99), percentile(proxied, 0.99)
            ms = [f"{seconds * 1000:.1f}ms" for seconds in (d50, p50, d99, p99, p50 - d50)]
            rows.append(
                [
                    f"{latency * 1000:.0f}ms",
                    *ms[:2],
                    f"{p50 / d50:.2f}x",
                    *ms[2:4],
                    f"{p99 / d99:.2f}x",
                    ms[4],
                ]
            )
    zoho.api.set_latency(0)
    header = ["Zoho latency", "direct p50", "proxy p50", "ratio", "direct p99", "proxy p99", "ratio"]
    print_table([*header, "added p50"], rows)


def aws_per_call(gateway_url: str, sid: str, calls: int, calls_counter: CallCounter) -> None:
    with httpx.Client(timeout=30) as http:
        http.get(f"{gateway_url}/proxy/{sid}/org")  # warm: subscription and token cached
        calls_counter.take("setup")
        for _ in range(calls):
            http.get(f"{gateway_url}/proxy/{sid}/org")
    print(f"\n2. AWS requests per proxied call (warm instance, {calls} calls)")
    counted = calls_counter.take("setup")[0]
    rows = [
        [f"{service}.{name}", f"{count / calls:.2f}"] for (service, name), count in sorted(counted.items())
    ]
    print_table(["request", "per call"], [*rows, ["total", f"{sum(counted.values()) / calls:.2f}"]])


def _callers(
    endpoint: str,
    table: str,
    key: str,
    limits: tuple[int, int],
    threads: int,
    seconds: float,
    standin_url: str,
    token: str,
) -> tuple[list[tuple[float, float]], list[float], int, int]:
    """One Lambda instance: its own Throttle, ``threads`` callers calling back to back until time is up.

    Returns each call's start (observed, granted), how long each held its slot, the refusals and the
    DynamoDB requests."""
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    from zoho_broker.catalogue import Throttling
    from zoho_broker.clock import SystemClock
    from zoho_broker.logic.throttle import Throttle, Throttled
    from zoho_broker.store.throttle import ThrottleStore

    store = ThrottleStore(table)
    throttle = Throttle(store, SystemClock(), slot_seconds=30)
    throttling = Throttling(requests_per_minute=limits[0], max_concurrent_requests=limits[1])
    starts: list[tuple[float, float]] = []
    held: list[float] = []  # from the slot taken (acquire returned) to its release written
    refused = [0]
    deadline = time.time() + seconds

    def caller() -> None:
        with httpx.Client(timeout=30) as http:
            while time.time() < deadline:
                try:
                    turn = throttle.acquire(
                        key, throttling, wait_seconds=min(10.0, max(0.0, deadline - time.time()))
                    )
                except Throttled as throttled:  # as the client does: ask again after Retry-After
                    refused[0] += 1
                    time.sleep(min(throttled.retry_after, max(0.0, deadline - time.time())))
                    continue
                began = time.time()
                try:
                    starts.append((began, turn.start_us / 1e6))
                    answer = http.get(
                        f"{standin_url}/crm/v8/org", headers={"Authorization": f"Zoho-oauthtoken {token}"}
                    )
                    assert answer.status_code == 200, answer.status_code
                finally:
                    throttle.release(turn)
                    held.append(time.time() - began)

    with ThreadPoolExecutor(max_workers=threads) as callers:
        list(callers.map(lambda _: caller(), range(threads)))
    return starts, held, refused[0], store.calls


def accuracy(
    endpoint: str, table: str, standin_url: str, token: str, zoho: Any, callers: int, seconds: float
) -> None:
    print(
        f"\n3. Throttle accuracy: {callers} callers in {PROCESSES} processes, {seconds:g} s each, "
        f"Zoho latency {ZOHO_LATENCY_FOR_LIMITS * 1000:.0f} ms"
    )
    rows = []
    zoho.api.set_latency(ZOHO_LATENCY_FOR_LIMITS)
    zoho.api.set_concurrency_limit(1000)  # observe, do not refuse
    context = multiprocessing.get_context("spawn")
    for rpm, concurrency in LIMITS:
        key = f"bench-{rpm}-{concurrency}-{time.time_ns()}"
        zoho.api.peak_in_flight.clear()
        instance = functools.partial(
            _callers,
            endpoint,
            table,
            key,
            (rpm, concurrency),
            callers // PROCESSES,
            seconds,
            standin_url,
            token,
        )
        # One task per process: each outlasts the others' start, so no process takes two.
        with ProcessPoolExecutor(max_workers=PROCESSES, mp_context=context) as instances:
            answers = [instances.submit(instance) for _ in range(PROCESSES)]
        starts = [start for answer in answers for start in answer.result()[0]]
        held = [hold for answer in answers for hold in answer.result()[1]]
        refused = sum(answer.result()[2] for answer in answers)
        dynamodb = sum(answer.result()[3] for answer in answers)
        granted = sorted(grant for _, grant in starts)
        observed = sorted(actual for actual, _ in starts)
        peak = max(zoho.api.peak_in_flight.values(), default=0)
        bound = min(rpm, concurrency / ZOHO_LATENCY_FOR_LIMITS * 60)
        # What the slots carry with calls as long as they really held them (the stand-in's 100 ms plus
        # HTTP and the two DynamoDB writes on this machine): the ceiling no limiter can pass.
        hold = statistics.mean(held)
        held_bound = min(rpm, concurrency / hold * 60)
        rows.append(
            [
                *(rpm, concurrency, peak, _most_in_window(granted), _most_in_window(observed)),
                *(f"{_allowed(granted, rpm):.0f}", f"{_rate(granted):.0f}", f"{bound:.0f}"),
                *(f"{_rate(granted) / bound:.0%}", f"{hold * 1000:.0f}ms", f"{held_bound:.0f}"),
                *(f"{_rate(granted) / held_bound:.0%}", refused, f"{dynamodb / len(starts):.2f}"),
            ]
        )
    zoho.api.set_latency(0)
    header = ["rpm", "conc", "peak conc", "granted in W", "observed in W", "allowed", "rate/min", "bound"]
    header += ["of bound", "held", "held bound", "of it", "refused", "DDB/call"]
    print_table(header, rows)


def _window(starts: list[float]) -> float:
    return min(starts[-1] - starts[0], 60.0)


def _most_in_window(starts: list[float]) -> int:
    """The most starts in any half-open window [t, t + W), W = min(run, 60 s)."""
    window = _window(starts)
    return max(bisect.bisect_left(starts, moment + window) - first for first, moment in enumerate(starts))


def _allowed(starts: list[float], rpm: int) -> float:
    return rpm * _window(starts) / 60


def _rate(starts: list[float]) -> float:
    return (len(starts) - 1) / (starts[-1] - starts[0]) * 60


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--latency", default="0,0.1", help="stand-in latencies in seconds, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--callers", type=int, default=50)
    args = parser.parse_args()
    counted = count_aws_calls()
    with local_broker("ERROR") as started:
        gateway_url = started["gateway"].base_url
        zoho = started["standin"]
        standin_url = started["accounts_servers"]["eu"]
        with httpx.Client(base_url=gateway_url, timeout=30) as admin, httpx.Client(timeout=30) as browser:
            throttling = {"requests_per_minute": 100_000, "max_concurrent_requests": 100}
            sid = create_subscription(admin, throttling=throttling)["subscription_id"]
            assert connect(admin, browser, sid, data_centre="eu").status_code == 200
            token = admin.get(f"/admin/subscriptions/{sid}/token").json()["access_token"]
        latencies = [float(value) for value in args.latency.split(",")]
        overhead(gateway_url, standin_url, sid, token, args.calls, zoho, latencies)
        aws_per_call(gateway_url, sid, min(args.calls, 200), counted)
        accuracy(
            os.environ["AWS_ENDPOINT_URL"],
            started["stack"].physical_ids["ThrottleTable"],
            standin_url,
            token,
            zoho,
            args.callers,
            args.seconds,
        )


if __name__ == "__main__":
    main()

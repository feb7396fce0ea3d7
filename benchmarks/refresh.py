"""Throughput of the scheduled refresh: N due subscriptions refreshed the way production does it.

    python benchmarks/refresh.py [--n 1000,10000] [--concurrency 5,10,20] [--latency-ms 100]

For each N, in a fresh world:

- AWS is moto, provisioned from template.yaml; the functions' environment is the template's
  (RefreshWorkerFunction), pointed at the Zoho stand-in. Zoho is the stand-in over real HTTP, with a fixed
  added latency on every token call during the measured phase (none while seeding).
- Seeding (not measured): N connected subscriptions, each with its own API Console client and a real
  refresh token minted by a code exchange at the stand-in's token endpoint, and an access token whose
  expiry is in the past, so all N are due. The first few go through the real path (logic.subscriptions.create,
  the lease, the secret write and record_connection, exactly what the callback does). moto's
  TransactWriteItems deep-copies the whole table on every call, which makes create() quadratic (about
  1 s per create at 10,000), so the rest are written with BatchWriteItem in the state record_connection
  leaves behind, and their secrets are created holding the tokens. Before anything is measured, a bulk
  item is checked against a real one (same attributes, same types), so the shortcut cannot drift.
- Sweep: the RefresherFunction handler, imported from functions/refresher/app.py as Lambda would, finds
  the due ids through the RefreshDue index and (above BROKER_REFRESH_INLINE_LIMIT) queues them.
- Refresh phase: C threads, each one RefreshWorkerFunction instance (its own import of
  functions/refresh_worker/app.py, so its own BatchProcessor) behind its own SQS poller: ReceiveMessage
  (the template's BatchSize), handler(event), DeleteMessageBatch of all but the reported failures, until
  the queue is empty; that is Lambda's event source mapping with MaximumConcurrency C.
- Verification: every secret holds a new access token and the same refresh token, a sample of the new
  access tokens is accepted by the stand-in's /standin/whoami, nothing is left due, leased or queued.
  Further concurrency levels re-use the subscriptions after making them all due again.
- Memory: tracemalloc slows moto down about threefold, so it stays out of the timed rounds. Before them,
  with all N due, a separate pass runs the sweep and the first 200 or so refreshes under tracemalloc;
  then the queue is emptied and what it refreshed is made due again. Every round reports max RSS.

Where things run, and why (moto's limits and how the harness works around them): see
benchmarks/harness/__init__.py.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import random
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from harness.common import AWS_SETUP, DATA_CENTRE
from harness.instruments import OutputSink
from harness.processes import aws_backend, prepare_process, remote_standin
from harness.report import conclusion, render
from harness.rounds import RoundResult, run_round, verify
from harness.world import make_due, open_world, reset_after_memory_pass, seed


def _numbers(text: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"expected whole numbers of at least 1, got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=_numbers, default=[1000, 10000], help="due subscriptions (default 1000,10000)"
    )
    parser.add_argument(
        "--concurrency", type=_numbers, default=[5], help="worker instances, e.g. 5,10,20 (default 5)"
    )
    parser.add_argument("--latency-ms", type=float, default=100.0, help="added Zoho latency (default 100)")
    parser.add_argument("--sample", type=int, default=20, help="new tokens checked with whoami (default 20)")
    parser.add_argument(
        "--memory-refreshes",
        type=int,
        default=200,
        help="refreshes in the tracemalloc pass before the timed rounds; 0 skips the pass (default 200)",
    )
    options = parser.parse_args(argv)
    latency = options.latency_ms / 1000
    if latency <= 0:
        parser.error("--latency-ms must be above 0")

    prepare_process()
    out, sink = sys.stdout, OutputSink()
    # Powertools' Logger takes sys.stdout when it is made (at import), and its metrics print to it: the
    # broker's output is counted, the figures go to ``out``.
    show = functools.partial(print, file=out, flush=True)  # progress and figures
    with contextlib.redirect_stdout(sink):
        show(
            f"Refresh benchmark · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · Python {sys.version.split()[0]} · "
            f"{os.cpu_count()} CPUs · Zoho latency {options.latency_ms:.0f} ms · N {options.n} · "
            f"C {options.concurrency} · AWS: {AWS_SETUP} · refresh queue: FastQueue",
        )
        everything: list[tuple[int, list[RoundResult]]] = []
        ok = True
        for n in options.n:
            started = time.perf_counter()
            memory: RoundResult | None = None
            with aws_backend(), remote_standin({DATA_CENTRE: 0}) as standin:
                world = open_world(standin)
                seeded, seed_report = seed(world, n)
                show(f"  N={n:,}: seeded in {seed_report.seconds:.1f} s")
                made_due = 0.0
                if options.memory_refreshes > 0:
                    measuring = time.perf_counter()
                    # Right after seeding, with all N due: the sweep and the first refreshes under tracemalloc.
                    memory = run_round(
                        world,
                        options.concurrency[0],
                        latency,
                        sink,
                        trace_memory=True,
                        limit=options.memory_refreshes,
                    )
                    made_due = reset_after_memory_pass(world, seeded)
                    show(
                        f"  N={n:,}: memory pass in {time.perf_counter() - measuring:.1f} s",
                    )
                results: list[RoundResult] = []
                rng = random.Random(n)
                for concurrency in options.concurrency:
                    if results:
                        made_due = make_due(world, seeded, results[-1].checks.secrets)
                        results[-1].checks.secrets.clear()
                    round_started = int(time.time())
                    result = run_round(world, concurrency, latency, sink)
                    result.made_due_seconds = made_due
                    verifying = time.perf_counter()
                    result.verification = verify(world, seeded, options.sample, rng, round_started)
                    ok = ok and result.verification.ok
                    results.append(result)
                    show(
                        f"  N={n:,} C={concurrency}: {result.refreshed:,} refreshed in {result.refresh_seconds:.1f} s, "
                        f"verification {'OK' if result.verification.ok else 'FAILED'} "
                        f"({time.perf_counter() - verifying:.1f} s)",
                    )
            render(out, n, latency, seed_report, results, memory)
            show(f"(N={n:,} took {time.perf_counter() - started:.0f} s in all)")
            everything.append((n, results))
        conclusion(out, latency, everything)
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

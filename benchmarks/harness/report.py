"""The tables and the conclusion the refresh benchmark prints."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TextIO

from .common import AWS_SETUP, MB, SECRETS_MANAGER_WRITE_QUOTA
from .rounds import RoundResult
from .table import print_table
from .world import SeedReport

Row = list[str]  # a label, then one cell per round


def _per(count: float, total: int, digits: int = 2) -> str:
    return f"{count / total:.{digits}f}" if total else "-"


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / MB:.1f}"


def _calls_rows(
    title: str,
    results: Sequence[RoundResult],
    pick: Callable[[RoundResult], Counter[tuple[str, str]]],
    per_due: bool,
) -> list[Row]:
    def denominator(result: RoundResult) -> int:
        return result.due if per_due else result.refreshed

    rows: list[Row] = [[title, *("" for _ in results)]]
    for service, operation in sorted({key for result in results for key in pick(result)}):
        cells = [_per(pick(r).get((service, operation), 0), denominator(r)) for r in results]
        rows.append([f"  {service} {operation}", *cells])
    return [*rows, ["  total", *(_per(sum(pick(r).values()), denominator(r)) for r in results)]]


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:.1f}" if seconds > 0 else "-"


def _outcomes(counts: Counter[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "none"


def _ms(seconds: float, result: RoundResult) -> str:
    """Milliseconds per handled message."""
    return _per(1000 * seconds, result.tally.handled, 0)


# One row per figure: its label and how it reads from a round (the verification is always set).
ROWS: list[tuple[str, Callable[[RoundResult], str]]] = [
    ("sweep: due / queued", lambda r: f"{r.due} / {r.queued}"),
    ("sweep wall time (s)", lambda r: f"{r.sweep_seconds:.2f}"),
    ("refresh phase wall time (s)", lambda r: f"{r.refresh_seconds:.1f}"),
    ("refreshed per second, refresh phase", lambda r: _rate(r.refreshed, r.refresh_seconds)),
    (
        "refreshed per second, sweep + refresh",
        lambda r: _rate(r.refreshed, r.sweep_seconds + r.refresh_seconds),
    ),
    ("limit: C / latency, Zoho-bound (/s)", lambda r: f"{r.concurrency / r.latency:.0f}"),
    ("limit: PutSecretValue quota (/s)", lambda r: f"{SECRETS_MANAGER_WRITE_QUOTA:.0f}"),
    (
        "paced production cap min(C/lat, 50) (/s)",
        lambda r: f"{min(r.concurrency / r.latency, SECRETS_MANAGER_WRITE_QUOTA):.0f}",
    ),
    ("refreshes succeeded", lambda r: str(r.refreshed)),
    ("refreshes failed", lambda r: str(r.failed)),
    (
        "other outcomes",
        lambda r: _outcomes(
            Counter(
                {
                    name: count
                    for name, count in r.tally.outcomes.items()
                    if name not in ("refreshed", "failed", "needs_reauthentication") and " " not in name
                }
            )
        ),
    ),
    (
        "invocations / failed / items reported failed",
        lambda r: (
            f"{r.tally.invocations} / {sum(r.tally.handler_errors.values())} / {r.tally.reported_failures}"
        ),
    ),
    ("duplicate deliveries", lambda r: str(r.tally.duplicate_deliveries)),
    ("worker time per message (ms)", lambda r: _ms(r.tally.handler_seconds, r)),
    ("  in the Zoho token call", lambda r: _ms(r.zoho_seconds, r)),
    ("  in AWS calls (moto)", lambda r: _ms(r.function_call_seconds, r)),
    (
        "  the rest (Powertools, pydantic, GIL waits)",
        lambda r: _ms(r.tally.handler_seconds - r.zoho_seconds - r.function_call_seconds, r),
    ),
]
LATER_ROWS: list[tuple[str, Callable[[RoundResult], str]]] = [
    ("Zoho token calls per refresh", lambda r: _per(r.token_calls, r.refreshed)),
    (
        "log output per refresh: lines / bytes",
        lambda r: f"{_per(r.log_lines, r.refreshed)} / {_per(r.log_bytes, r.refreshed, 0)}",
    ),
    (
        "process CPU (s) / CPU s per wall s",
        lambda r: f"{r.cpu_seconds:.1f} / {r.cpu_seconds / (r.sweep_seconds + r.refresh_seconds):.2f}",
    ),
    ("process CPU per refresh (ms)", lambda r: _per(1000 * r.cpu_seconds, r.refreshed, 1)),
    ("SQS poller calls, wall (s)", lambda r: f"{r.tally.sqs_seconds:.1f}"),
    ("process max RSS so far (MB)", lambda r: _mb(r.max_rss)),
    ("verification", lambda r: ""),
    ("  new access token in the secret", lambda r: f"{r.checks.new_access_token}/{r.checks.checked}"),
    ("  refresh token unchanged", lambda r: f"{r.checks.refresh_token_unchanged}/{r.checks.checked}"),
    ("  expiry about an hour ahead", lambda r: f"{r.checks.expiry_ahead}/{r.checks.checked}"),
    ("  new token accepted by whoami", lambda r: f"{r.checks.whoami_accepted}/{r.checks.whoami_sampled}"),
    ("  still due / leases left", lambda r: f"{r.checks.still_due} / {r.checks.leases_left}"),
    (
        "  queue visible / in flight / DLQ",
        lambda r: f"{r.checks.queue_visible} / {r.checks.queue_in_flight} / {r.checks.dead_letters}",
    ),
    ("  statuses", lambda r: _outcomes(r.checks.statuses)),
    ("  last errors", lambda r: _outcomes(r.checks.errors)),
    ("  verdict", lambda r: "OK" if r.checks.ok else "FAILED"),
    (
        "made due again before the round (s)",
        lambda r: f"{r.made_due_seconds:.1f}" if r.made_due_seconds else "-",
    ),
]


def render(
    out: TextIO,
    n: int,
    latency: float,
    seed_report: SeedReport,
    results: Sequence[RoundResult],
    memory: RoundResult | None,
) -> None:
    def rows(table: list[tuple[str, Callable[[RoundResult], str]]]) -> list[Row]:
        return [[label, *(read(r) for r in results)] for label, read in table]

    everything = rows(ROWS)
    everything += _calls_rows(
        "AWS calls per refresh: worker function", results, lambda r: r.function_calls, False
    )
    everything += _calls_rows("AWS calls per refresh: SQS poller", results, lambda r: r.poller_calls, False)
    everything += _calls_rows("AWS calls per due subscription: sweep", results, lambda r: r.sweep_calls, True)
    everything += rows(LATER_ROWS)

    print(
        f"\nN = {n:,} due subscriptions · Zoho stand-in latency {latency * 1000:.0f} ms · "
        f"AWS: {AWS_SETUP} · {os.cpu_count()} CPUs",
        file=out,
    )
    print(
        f"seeded in {seed_report.seconds:.1f} s (not measured): {seed_report.reference} through the real "
        f"create + connect path, {seed_report.bulk:,} in bulk; each its own client and real refresh token",
        file=out,
    )
    header = ["", *(f"C={r.concurrency}" for r in results)]
    print_table(header, everything, out=out, rule=True)
    if memory is not None:
        print(
            f"memory (a separate pass under tracemalloc before the timed rounds, C={memory.concurrency}): the "
            f"sweep of all {memory.due:,} peaked at {_mb(memory.sweep_peak)} MB and left "
            f"{_mb(memory.refresh_traced_start)} MB (the queued messages, which SQS would hold); with that, the next "
            f"{memory.tally.handled:,} refreshes peaked at {_mb(memory.refresh_peak)} MB (moto's new secret "
            f"versions included); process max RSS {_mb(memory.max_rss)} MB",
            file=out,
        )


def conclusion(out: TextIO, latency: float, everything: Sequence[tuple[int, Sequence[RoundResult]]]) -> None:
    print("\nWhat bounds throughput", file=out)
    measured = [
        (n, r)
        for n, results in everything
        for r in results
        if r.refreshed and r.refresh_seconds and r.tally.handled
    ]
    for n, r in measured:
        observed = r.refreshed / r.refresh_seconds
        print(
            f"  N={n:,} C={r.concurrency}: {observed:.0f}/s, {100 * observed * latency / r.concurrency:.0f}% of "
            f"C/latency; a message spends {1000 * r.tally.handler_seconds / r.tally.handled:.0f} ms in a worker: "
            f"{1000 * r.zoho_seconds / r.tally.handled:.0f} at Zoho, "
            f"{1000 * r.function_call_seconds / r.tally.handled:.0f} in its four AWS calls, the rest in Python",
            file=out,
        )
    if not measured:
        return
    least_contended = min((r for _, r in measured), key=lambda r: r.concurrency)
    aws_ms = 1000 * least_contended.function_call_seconds / least_contended.tally.handled
    scaling = []
    for n, results in everything:
        rounds = sorted(
            (r for r in results if r.refreshed and r.refresh_seconds), key=lambda r: r.concurrency
        )
        if len(rounds) > 1 and rounds[-1].concurrency > rounds[0].concurrency:
            low, high = rounds[0], rounds[-1]
            low_rate, high_rate = low.refreshed / low.refresh_seconds, high.refreshed / high.refresh_seconds
            scaling.append(
                f"at N={n:,}, {high.concurrency / low.concurrency:.0f} times the workers (C={low.concurrency} to "
                f"C={high.concurrency}) gave {high_rate / low_rate:.2f} times the rate ({low_rate:.0f} to "
                f"{high_rate:.0f}/s)"
            )
    if scaling:
        saturation = (
            "A larger C helps only until the AWS side saturates: "
            + "; ".join(scaling)
            + ". Where the rate stops growing, moto (its DynamoDB, on one of two cores) is saturated: that "
            "ceiling is the benchmark's, not the broker's."
        )
    else:
        saturation = (
            "With one concurrency level the rate is set by that per-message time, not by saturation; "
            "--concurrency 5,10,20 shows where moto (its DynamoDB, on one of two cores) saturates, a ceiling "
            "of the benchmark, not of the broker."
        )
    print(
        "\nEach worker instance handles one message at a time, and each message is five calls in a row: "
        "UpdateItem (take the lease) and GetSecretValue, the Zoho token call (the latency), then "
        "PutSecretValue and UpdateItem (record the refresh, release the lease). So C instances refresh at "
        "most C / (latency + AWS time) a second, below C/latency by the AWS share: at "
        f"C={least_contended.concurrency} here about {aws_ms:.0f} ms a message of moto's time, not far from "
        "what four real round trips cost. "
        f"{saturation} Deployed, DynamoDB does not saturate at these rates, but Secrets Manager does: "
        "every refresh writes its secret exactly once (the floor), PutSecretValue is limited to "
        f"{SECRETS_MANAGER_WRITE_QUOTA:.0f} a second per region (moto does not enforce it here), and the "
        "callback's and admin's writes share that quota. The broker therefore paces its refresh writes to a "
        "budget across all workers (SecretWritesPerSecond, default 40) and keeps a minted token until its "
        "write fits, so a deployment refreshes at most min(C / (latency + AWS time), budget) a second: with a "
        f"Zoho as quick as {latency * 1000:.0f} ms, C=5 already runs near it, and a larger C only waits "
        "longer for the budget. At 40 a second, 10,000 due subscriptions take about 250 s, well inside the "
        "15-minute refresh margin; benchmarks/quota.py measures that with the quota enforced.",
        file=out,
    )

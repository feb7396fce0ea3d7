"""The refresher for a whole region on a virtual clock: N subscriptions onboarded at once, 24 hours.

    python benchmarks/simulate.py [--n 100000] [--hours 24] [--concurrency 10] [--schedule phase|legacy]

What is the broker's own code and what is modelled:
- Scheduling: every due time comes from ``zoho_broker.logic.schedule`` (``next_due``; after failures
  and deferrals ``backoff_seconds`` and ``retry_due``), with the settings' defaults (margin, retry
  base and cap).
- Pacing: every secret write first takes a slot with ``zoho_broker.logic.pacing.try_slot`` against a
  window counter (a dictionary standing in for the DynamoDB table), at the settings' default budget;
  a refused slot waits for the window it names. The write's waiting and retry bounds are the
  scheduled path's (``refresh.SCHEDULED``): the first throttled retry after 0.25 s, doubling, all within
  20 s, then a deferral with backoff.
- The refresh decision: the worker skips a queued subscription that is not due (its ``refresh_due_at``
  is in the future), as ``refresh.refresh_queued`` does; a subscription due is refreshed.
- Modelled, not run: the sweep (every ``--sweep-seconds``, queues what is due and not already queued;
  the real sweep queues it again and the worker drops the duplicate), SQS (a FIFO the ``--concurrency``
  workers take from), the time of AWS calls (``--aws-ms`` per refresh) and of Zoho (``--zoho-ms``,
  uniformly 0.5x to 1.5x), Zoho's transient failures (``--zoho-failure-rate``), Secrets Manager's quota
  (``--quota`` writes per one-second window for the region; ``--other-writers`` writes a second by
  others share it).

Onboarded at once: every subscription gets its first token at t = 0 (as if N callbacks ran together),
and the callback's due time comes from next_due like any refresh. ``--schedule legacy`` replaces
next_due and backoff with the broker's code before this change (due exactly ``margin`` before expiry;
the first backoff exactly ``retry_base``), for comparison.

Printed: failed refreshes, wasted Zoho calls (tokens minted and never written), tokens refreshed after
they expired, time until every subscription had its first refresh (the initial burst drained), the
longest wait from due to written, peak writes per second, and per refresh period the writes in each
five-minute bucket (how flat the load is).
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT / "layers" / "broker",):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from zoho_broker.config import Settings  # noqa: E402
from zoho_broker.logic import schedule  # noqa: E402
from zoho_broker.logic.pacing import try_slot  # noqa: E402
from zoho_broker.logic.refresh import SCHEDULED  # noqa: E402

DEFAULTS = Settings.model_fields
TOKEN_SECONDS = schedule.TOKEN_LIFETIME_SECONDS
BUCKET_SECONDS = 300
EPOCH = 1_795_000_000  # the virtual clock's t = 0, an arbitrary epoch second


def _default(name: str) -> int:
    value = DEFAULTS[name].default
    assert isinstance(value, int)
    return value


class Windows:
    """The budget's window counter (DynamoDB's conditional ADD, here a dictionary)."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()

    def take(self, window: int, limit: int) -> bool:
        if self.counts[window] >= limit:
            return False
        self.counts[window] += 1
        return True


@dataclass
class Subscription:
    position: int
    sid: str
    expires_at: float
    due_at: float
    failures: int = 0
    queued: bool = False
    version: int = 0
    first_refreshed_at: float | None = None


@dataclass
class Job:
    """One worker's refresh in progress."""

    sub: Subscription
    due_at: float
    minted_at: float = 0.0
    deadline: float = 0.0
    retry_delay: float = 0.0


@dataclass
class Figures:
    refreshes: int = 0
    zoho_calls: int = 0
    zoho_failures: int = 0
    deferrals: int = 0
    after_expiry: int = 0
    throttled: int = 0
    skipped_not_due: int = 0
    longest_lag: float = 0.0
    writes_per_second: Counter[int] = field(default_factory=Counter)
    writes_per_bucket: Counter[int] = field(default_factory=Counter)
    max_queue: int = 0


def legacy_next_due(expires_at: float, now: float, margin: int) -> float:
    """The broker's next_due before phases: exactly ``margin`` before expiry (for comparison only)."""
    return max(min(expires_at - margin, now + 86400), now)


def legacy_backoff(failures: int, *, base: int, cap: int, rng: random.Random) -> int:
    ceiling = min(cap, base * 2 ** max(0, failures - 1))
    return rng.randint(base, max(base, ceiling))


class Simulation:
    def __init__(self, options: argparse.Namespace) -> None:
        self.o = options
        self.rng = random.Random(options.seed)
        self.windows = Windows()
        self.quota: Counter[int] = Counter()  # Secrets Manager's writes per window, everyone's
        # (when, sequence, what happens then, its job): the sequence keeps equal times in order.
        self.events: list[tuple[float, int, Callable[[float, Any], None], Any]] = []
        self.seq = 0
        self.index: list[tuple[float, int, int]] = []  # (due, position, version): the RefreshDue index
        self.queue: deque[Subscription] = deque()
        self.idle_workers = options.concurrency
        self.figures = Figures()
        self.subs: list[Subscription] = []

    # -- the broker's scheduling, through its own functions ------------------------------------------

    def next_due(self, sub: Subscription, now: float) -> float:
        if self.o.schedule == "legacy":
            return legacy_next_due(sub.expires_at, now, self.o.margin)
        return float(
            schedule.next_due(
                datetime.fromtimestamp(EPOCH + sub.expires_at, UTC),
                datetime.fromtimestamp(EPOCH + int(now), UTC),
                self.o.margin,
                subscription_id=sub.sid,
            )
            - EPOCH
        )

    def retry_due(self, sub: Subscription, now: float) -> float:
        """After a passing failure (Zoho's, or a deferred write)."""
        base, cap = self.o.retry_base, self.o.retry_cap
        if self.o.schedule == "legacy":
            return now + legacy_backoff(sub.failures, base=base, cap=cap, rng=self.rng)
        delay = schedule.backoff_seconds(sub.failures, base=base, cap=cap, rng=self.rng)
        return float(schedule.retry_due(int(now), delay, int(sub.expires_at), base=base))

    # -- the event loop -----------------------------------------------------------------------------

    def at(self, when: float, then: Callable[[float, Any], None], job: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, then, job))

    def set_due(self, position: int, due: float) -> None:
        sub = self.subs[position]
        sub.due_at = due
        sub.version += 1
        heapq.heappush(self.index, (due, position, sub.version))

    def onboard(self) -> None:
        for position in range(self.o.n):
            sub = Subscription(
                position=position, sid=f"sub_{position:016x}", expires_at=float(TOKEN_SECONDS), due_at=0.0
            )
            self.subs.append(sub)
            self.set_due(position, self.next_due(sub, 0.0))
        for when in range(0, self.o.hours * 3600 + 1, self.o.sweep_seconds):
            self.at(float(when), self.sweep)
        if self.o.other_writers:
            for second in range(self.o.hours * 3600 + 1):
                self.quota[second] += self.o.other_writers

    def sweep(self, now: float, _: None = None) -> None:
        positions = {}
        while self.index and self.index[0][0] <= now:
            due, position, version = heapq.heappop(self.index)
            if version == self.subs[position].version:
                positions[position] = due
        for position in positions:
            sub = self.subs[position]
            if not sub.queued:
                sub.queued = True
                self.queue.append(sub)
        self.figures.max_queue = max(self.figures.max_queue, len(self.queue))
        self.dispatch(now)

    def dispatch(self, now: float) -> None:
        while self.idle_workers and self.queue:
            sub = self.queue.popleft()
            sub.queued = False
            self.idle_workers -= 1
            # The worker reads the subscription first: not due (re-delivered, in backoff) -> nothing.
            if sub.due_at > now:
                self.figures.skipped_not_due += 1
                self.at(now + 0.005, self.free)
                continue
            job = Job(sub=sub, due_at=sub.due_at)
            zoho = self.o.zoho_ms / 1000 * self.rng.uniform(0.5, 1.5)
            self.at(now + self.o.aws_ms / 1000 * 0.6 + zoho, self.zoho_answered, job)

    def zoho_answered(self, now: float, job: Job) -> None:
        self.figures.zoho_calls += 1
        sub = job.sub
        if self.rng.random() < self.o.zoho_failure_rate:
            self.figures.zoho_failures += 1
            sub.failures += 1
            self.finish(now, sub, due=self.retry_due(sub, now))
            return
        job.minted_at = now - self.o.zoho_ms / 2000  # Zoho's hour starts while we wait for the answer
        job.deadline = now + SCHEDULED.write_wait_seconds
        job.retry_delay = SCHEDULED.first_retry_seconds
        self.try_write(now, job)

    def try_write(self, now: float, job: Job) -> None:
        granted, at = try_slot(self.windows, now, self.o.budget)
        if not granted:
            if at > job.deadline:
                self.defer(now, job)
            else:
                self.at(at, self.try_write, job)
            return
        if at > now:  # the slot is the next second's: the write waits for it
            self.at(at, self.send, job)
            return
        self.send(now, job)

    def send(self, now: float, job: Job) -> None:
        second = int(now)
        if self.quota[second] >= self.o.quota:  # Secrets Manager answers ThrottlingException
            self.figures.throttled += 1
            if now + job.retry_delay > job.deadline:
                self.defer(now, job)
            else:
                self.at(now + job.retry_delay, self.try_write, job)
                job.retry_delay *= 2
            return
        self.quota[second] += 1
        self.written(now, job)

    def written(self, now: float, job: Job) -> None:
        f, sub = self.figures, job.sub
        f.refreshes += 1
        f.writes_per_second[int(now)] += 1
        f.writes_per_bucket[int(now) // BUCKET_SECONDS] += 1
        if now > sub.expires_at:
            f.after_expiry += 1
        f.longest_lag = max(f.longest_lag, now - job.due_at)
        if sub.first_refreshed_at is None:
            sub.first_refreshed_at = now
        sub.expires_at = job.minted_at + TOKEN_SECONDS
        sub.failures = 0
        self.finish(now + self.o.aws_ms / 1000 * 0.4, sub, due=self.next_due(sub, now))

    def defer(self, now: float, job: Job) -> None:
        self.figures.deferrals += 1  # the token was minted and could not be written: a wasted Zoho call
        job.sub.failures += 1
        self.finish(now, job.sub, due=self.retry_due(job.sub, now))

    def finish(self, now: float, sub: Subscription, *, due: float) -> None:
        self.set_due(sub.position, due)
        self.at(now, self.free)

    def free(self, now: float, _: None = None) -> None:
        self.idle_workers += 1
        self.dispatch(now)

    def run(self) -> None:
        self.onboard()
        end = self.o.hours * 3600
        while self.events:
            now, _, then, job = heapq.heappop(self.events)
            if now > end:
                break
            then(now, job)
        # Tokens that lapsed without being refreshed by the end (none should).
        self.lapsed = sum(1 for sub in self.subs if sub.expires_at < end)


def render(sim: Simulation, seconds: float) -> str:
    o, f = sim.o, sim.figures
    period = schedule.refresh_period(o.margin)
    firsts = [sub.first_refreshed_at for sub in sim.subs]
    drained = max(t for t in firsts if t is not None) if all(t is not None for t in firsts) else None
    failed = f.deferrals + sim.lapsed
    lines = [
        f"Refresher simulation · schedule {o.schedule} · N {o.n:,} onboarded at t=0 · {o.hours} h virtual "
        f"({seconds:.0f} s real) · workers {o.concurrency} · budget {o.budget}/s · Secrets Manager quota "
        f"{o.quota}/s with {o.other_writers}/s by other writers · margin {o.margin} s (period {period} s) · "
        f"sweep every {o.sweep_seconds} s · Zoho {o.zoho_ms:.0f} ms ±50%, {o.zoho_failure_rate:.2%} transient "
        f"failures · AWS {o.aws_ms:.0f} ms per refresh · seed {o.seed}",
        "",
        f"  refreshes written                 {f.refreshes:,}",
        f"  failed refreshes                  {failed:,}  (deferred writes {f.deferrals:,}, tokens lapsed "
        f"unrefreshed at the end {sim.lapsed:,})",
        f"  Zoho failures injected            {f.zoho_failures:,}  (transient: backed off and retried)",
        f"  Zoho token calls                  {f.zoho_calls:,}",
        f"  wasted Zoho calls                 {f.zoho_calls - f.refreshes - f.zoho_failures:,}  "
        "(tokens minted and never written)",
        f"  tokens refreshed after expiry     {f.after_expiry:,}",
        "  initial burst drained after       "
        + (
            f"{drained:,.0f} s ({drained / 60:.1f} min)"
            if drained is not None
            else "never (some never refreshed)"
        ),
        f"  longest wait due -> written       {f.longest_lag:,.0f} s  (margin {o.margin} s)",
        f"  peak writes per second            {max(f.writes_per_second.values(), default=0)} by the broker, "
        f"{max((sim.quota[s] for s in f.writes_per_second), default=0)} in all (quota {o.quota})",
        f"  Secrets Manager throttled writes  {f.throttled:,}",
        f"  queued messages skipped, not due  {f.skipped_not_due:,}",
        f"  longest refresh queue             {f.max_queue:,}",
        "",
        f"  writes per 5-minute bucket, one row per refresh period ({period} s); flat = max/mean near 1:",
    ]
    buckets_per_period = period // BUCKET_SECONDS
    total_buckets = o.hours * 3600 // BUCKET_SECONDS
    for start in range(0, total_buckets, buckets_per_period):
        row = [f.writes_per_bucket[b] for b in range(start, min(start + buckets_per_period, total_buckets))]
        if not row:
            continue
        mean = sum(row) / len(row)
        ratio = f"{max(row) / mean:5.2f}" if mean else "    -"
        hours = start * BUCKET_SECONDS / 3600
        lines.append(f"    {hours:5.2f} h  max/mean {ratio}  " + " ".join(f"{c:6,}" for c in row))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="subscriptions (default 100,000)")
    parser.add_argument("--hours", type=int, default=24, help="virtual hours (default 24)")
    parser.add_argument("--concurrency", type=int, default=10, help="refresh workers (default 10)")
    parser.add_argument("--budget", type=int, default=_default("secret_writes_per_second"))
    parser.add_argument("--quota", type=int, default=50, help="Secrets Manager writes/s (default 50)")
    parser.add_argument("--other-writers", type=int, default=0, help="others' writes/s in the quota")
    parser.add_argument("--margin", type=int, default=_default("refresh_margin_seconds"))
    parser.add_argument("--retry-base", type=int, default=_default("retry_base_seconds"))
    parser.add_argument("--retry-cap", type=int, default=_default("retry_cap_seconds"))
    parser.add_argument("--sweep-seconds", type=int, default=300, help="RefreshSchedule (default 300)")
    parser.add_argument("--zoho-ms", type=float, default=150.0, help="Zoho token call (default 150)")
    parser.add_argument("--aws-ms", type=float, default=40.0, help="AWS calls per refresh (default 40)")
    parser.add_argument("--zoho-failure-rate", type=float, default=0.002, help="default 0.2%%")
    parser.add_argument("--schedule", choices=["phase", "legacy"], default="phase")
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args(argv)
    started = time.perf_counter()
    simulation = Simulation(options)
    simulation.run()
    print(render(simulation, time.perf_counter() - started))
    failed = simulation.figures.deferrals + simulation.lapsed + simulation.figures.after_expiry
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""The refresher against Secrets Manager's write quota: N subscriptions due at once, quota enforced.

    python benchmarks/quota.py [--n 10000] [--concurrency 10] [--quota 25] [--budget 20] [--unpaced]

The world is benchmarks/harness's (as in benchmarks/refresh.py) (moto from template.yaml, the Zoho stand-in over HTTP with added
latency, the real RefresherFunction and RefreshWorkerFunction handlers, C worker instances behind
their SQS pollers), with two differences:

- moto's Secrets Manager does not enforce the quota, so a limiter stands in front of it: a botocore
  ``before-send`` hook on PutSecretValue that counts the region's writes per one-second window and
  answers HTTP 400 ThrottlingException beyond ``--quota``, as Secrets Manager does. It sits where the
  network would be, so botocore's own retries (standard mode, three attempts) see the throttling.
- Scale: Secrets Manager allows 50 writes a second; moto and the stand-in sustain about 30 refreshes a
  second on this two-core machine, so a quota of 50 could never be reached. The quota is scaled to
  ``--quota`` (default 25, half the real one) and the broker's budget with it (``--budget``, default 20,
  the default 40/50 of the quota). Everything else is real size: the margin (tokens expire in 900 s,
  all due now), Zoho's latency, the number of subscriptions. At the real quota, the budget is 40 and the
  drain takes half as long.

Each subscription's access token expires ``--expires-in`` seconds (default the margin, 900 s) after
seeding, and all are due at once. Printed: refreshes written, failed refreshes, deferred ones, wasted
Zoho calls (token calls minus refreshes written), tokens refreshed after they expired, the time to drain
(from the sweep to the last write), peak writes per second (written, and attempted), throttled answers.
``--unpaced`` runs the same without the write budget, as the broker was before it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.common import AWS_SETUP, DATA_CENTRE
from harness.instruments import OutputSink
from harness.processes import aws_backend, prepare_process, remote_standin
from harness.rounds import run_round
from harness.world import World, batch_put, open_world, scan_subscriptions, seed


class QuotaLimiter:
    """Secrets Manager's PutSecretValue quota for the region: ``quota`` accepted per one-second window."""

    def __init__(self, quota: int) -> None:
        self.quota = quota
        self.accepted: Counter[int] = Counter()
        self.attempted: Counter[int] = Counter()
        self.throttled = 0
        self.writes: list[tuple[float, str]] = []  # (time, secret id) of every accepted write
        self._lock = threading.Lock()

    def attach(self, client: Any) -> None:
        client.meta.events.register(
            "before-send.secrets-manager.PutSecretValue", self._before_send, unique_id="quota-limiter"
        )

    def _before_send(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse
        from urllib3 import HTTPResponse

        now = time.time()
        window = int(now)
        with self._lock:
            self.attempted[window] += 1
            if self.accepted[window] < self.quota:
                self.accepted[window] += 1
                secret_id = json.loads(request.body)["SecretId"]
                self.writes.append((now, secret_id))
                return None  # on to moto
            self.throttled += 1
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": "ThrottlingException"}
        return AWSResponse(request.url, 400, headers, HTTPResponse(io.BytesIO(body), preload_content=False))


def _all_due_now(world: World) -> dict[str, float]:
    """Make every subscription due now; returns each one's access-token expiry (epoch seconds)."""
    items = list(scan_subscriptions(world))
    due = {"N": str(int(time.time()) - 1)}
    expiries: dict[str, float] = {}
    for item in items:
        item["refresh_due_at"] = due
        sid = item["pk"]["S"].removeprefix("sub#")
        expiries[sid] = datetime.fromisoformat(item["access_token_expires_at"]["S"]).timestamp()
    batch_put(world, items)
    return expiries


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000, help="subscriptions due at once (default 10,000)")
    parser.add_argument("--concurrency", type=int, default=10, help="worker instances (default 10)")
    parser.add_argument("--quota", type=int, default=25, help="PutSecretValue a second (default 25)")
    parser.add_argument("--budget", type=int, default=20, help="the broker's writes a second (default 20)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="added Zoho latency (default 100)")
    parser.add_argument(
        "--expires-in", type=int, default=900, help="seconds left on each token (default 900)"
    )
    parser.add_argument("--unpaced", action="store_true", help="no write budget (the broker before it)")
    parser.add_argument("--rounds", type=int, default=4, help="sweeps at most, for deferred refreshes")
    options = parser.parse_args(argv)
    prepare_process()

    from zoho_broker.logic.pacing import Unpaced
    from zoho_broker.store import aws

    out, sink = sys.stdout, OutputSink()
    # Powertools' Logger takes sys.stdout when it is made (at import), and its metrics print to it: the
    # broker's output is counted, the figures go to ``out``.
    show = functools.partial(print, file=out, flush=True)  # progress and figures
    with contextlib.redirect_stdout(sink):
        show(
            f"Quota benchmark · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {os.cpu_count()} CPUs · N {options.n:,} "
            f"due at once · C {options.concurrency} · Zoho latency {options.latency_ms:.0f} ms · Secrets Manager "
            f"quota {options.quota}/s (scaled from 50/s) · write budget "
            f"{'none (unpaced)' if options.unpaced else f'{options.budget}/s'} · tokens expire in "
            f"{options.expires_in} s · AWS: {AWS_SETUP}",
        )
        with aws_backend(), remote_standin({DATA_CENTRE: 0}) as standin:
            world = open_world(standin)
            # The seed writes tokens that expire ``expires_in`` seconds ahead instead of a minute ago.
            world.expired_ago = timedelta(seconds=-options.expires_in)
            world.services.settings.secret_writes_per_second = options.budget
            if options.unpaced:
                world.services.__dict__["write_budget"] = Unpaced()
            seeding = time.perf_counter()
            seeded, _ = seed(world, options.n)
            expiries = _all_due_now(world)
            show(f"  seeded {options.n:,} in {time.perf_counter() - seeding:.0f} s")
            limiter = QuotaLimiter(options.quota)
            limiter.attach(aws.secretsmanager())
            tokens_before = standin.token_call_count
            outcomes: Counter[str] = Counter()
            started = time.time()
            prefix = world.services.secrets.name_for("")
            for number in range(1, options.rounds + 1):
                result = run_round(world, options.concurrency, options.latency_ms / 1000, sink)
                outcomes.update(result.tally.outcomes)
                refreshed = {secret_id.removeprefix(prefix) for _, secret_id in limiter.writes}
                show(
                    f"  round {number}: {result.due:,} due, {len(refreshed):,} of {options.n:,} written "
                    f"after {time.time() - started:.0f} s",
                )
                if refreshed.issuperset(subscription.subscription_id for subscription in seeded):
                    break
                # Deferred ones come back after their backoff: wait for the next sweep that finds them.
                due = world.services.subscriptions.due_for_refresh
                while not list(due(due_before=int(time.time()))) and time.time() - started < 3 * 3600:
                    time.sleep(5)
            token_calls = standin.token_call_count - tokens_before
            last_write = max((at for at, _ in limiter.writes), default=started)
            first_write: dict[str, float] = {}
            for at, secret_id in limiter.writes:
                first_write.setdefault(secret_id.removeprefix(prefix), at)
            after_expiry = sum(1 for sid, at in first_write.items() if at > expiries.get(sid, float("inf")))
            never = options.n - len(first_write)
            written = len(limiter.writes)
            failed = outcomes.get("failed", 0) + outcomes.get("needs_reauthentication", 0)
            show(
                "\n".join(
                    [
                        "",
                        f"  refreshes written                 {written:,} (of {options.n:,} due; never refreshed: {never:,})",
                        f"  failed refreshes                  {failed:,}",
                        f"  deferred refreshes                {outcomes.get('deferred', 0):,} (write held back; retried later)",
                        f"  Zoho token calls                  {token_calls:,}",
                        f"  wasted Zoho calls                 {token_calls - written:,} (token calls minus refreshes written)",
                        f"  tokens refreshed after expiry     {after_expiry:,}",
                        f"  time to drain                     {last_write - started:.0f} s (sweep to last write)",
                        f"  peak writes per second            {max(limiter.accepted.values(), default=0)} written, "
                        f"{max(limiter.attempted.values(), default=0)} attempted (quota {options.quota})",
                        f"  throttled answers                 {limiter.throttled:,} (each retried by botocore, then by the broker)",
                        f"  outcomes                          {dict(sorted(outcomes.items()))}",
                    ]
                ),
            )
            ok = failed == 0 and token_calls == written and after_expiry == 0 and never == 0
            return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

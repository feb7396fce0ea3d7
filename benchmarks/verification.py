"""What the organization verification call adds to a consent's callback, measured within one run.

    python benchmarks/verification.py [--consents 20] [--latency-ms 100]

The local runner as `make dev` starts it (moto server, the Zoho stand-in over real HTTP, the template's
routes behind the local gateway). Consents alternate between a version that names a verification call
(zoho-crm 1: GET /crm/v8/org) and a copy of it that names none, each on a subscription of its own (Zoho
allows four grant codes a minute per client). Only the callback request is timed (code exchange,
verification, secret and item writes). ``--latency-ms`` delays every token answer and every API answer
of the stand-in by that much, as a distant Zoho would; the verification call then costs about one such
round trip more. Prints the median and 90th percentile callback time of each, and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "broker"), str(ROOT / "local")]

from harness.local_broker import local_broker, percentile  # noqa: E402

from tests.integration.flow import connect_link, create_subscription, decide_at_zoho, open_link  # noqa: E402


def _version_without_verification(admin: httpx.Client) -> None:
    crm = admin.get("/admin/integrations/zoho-crm/versions/1").json()
    body = {k: v for k, v in crm.items() if k not in ("changed_by", "changed_at")}
    body.update(version="plain", verification=None)
    answer = admin.post("/admin/integrations/zoho-crm/versions", json=body)
    answer.raise_for_status()


def _timed_consent(admin: httpx.Client, version: str) -> float:
    # A client of its own each: Zoho allows four grant codes a minute per client.
    client_id = f"1000.BENCH{uuid.uuid4().hex[:12].upper()}"
    sid = create_subscription(admin, name=f"Bench {client_id[-8:]}", version=version, client_id=client_id)[
        "subscription_id"
    ]
    with httpx.Client(follow_redirects=False, timeout=30) as browser:
        started = open_link(browser, connect_link(admin, sid))
        callback = decide_at_zoho(browser, started.headers["location"])
        began = time.perf_counter()
        page = browser.get(callback)
        took = time.perf_counter() - began
    if page.status_code != 200:
        raise SystemExit(f"the callback answered {page.status_code}: {page.text[:300]}")
    return took


def _summary(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1000:7.1f} ms, p90 {percentile(times, 0.9) * 1000:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--consents", type=int, default=20, help="consents per variant (default 20)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="added to every Zoho answer")
    options = parser.parse_args()
    with local_broker("WARNING") as started:
        standin = started["standin"]
        with httpx.Client(base_url=started["gateway"].base_url, timeout=30) as admin:
            _version_without_verification(admin)
            _timed_consent(admin, "1")  # warm both paths: imports and clients are not what is measured
            _timed_consent(admin, "plain")
            standin.set_latency(options.latency_ms / 1000)
            standin.api.set_latency(options.latency_ms / 1000)
            times: dict[str, list[float]] = {"1": [], "plain": []}
            for _ in range(options.consents):
                for version in times:
                    times[version].append(_timed_consent(admin, version))
    with_call, without = times["1"], times["plain"]
    print(f"callback, {options.consents} consents each, Zoho answers delayed {options.latency_ms:.0f} ms")
    print(f"  with the verification call:    {_summary(with_call)}")
    print(f"  without (version names none):  {_summary(without)}")
    ratio = statistics.median(with_call) / statistics.median(without)
    print(f"  ratio of medians: {ratio:.2f}x")


if __name__ == "__main__":
    main()

"""`python -m broker_local.zoho_standin`: the stand-in in the foreground, e.g. to point `make dev` or curl
at it."""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from collections.abc import Sequence

from broker_local.zoho_standin import ZohoStandIn


def main(argv: Sequence[str] | None = None) -> None:
    """Run the stand-in in the foreground until Ctrl-C, e.g. to point `make dev` or curl at it."""
    parser = argparse.ArgumentParser(prog="python -m broker_local.zoho_standin", description=__doc__)
    parser.add_argument(
        "--dc",
        action="append",
        metavar="NAME=PORT",
        help="a data centre and its port (0 = any free port); repeatable; default us=9001 eu=9002",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before every token answer")
    parser.add_argument("--code-ttl", type=int, default=120, help="grant code lifetime in seconds")
    options = parser.parse_args(argv)
    data_centres: dict[str, int] = {}
    for item in options.dc or ["us=9001", "eu=9002"]:
        name, separator, port = item.partition("=")
        if not separator or not name or not port.isdigit():
            parser.error(f"--dc takes NAME=PORT, not {item!r}")
        data_centres[name] = int(port)
    standin = ZohoStandIn(
        data_centres,
        host=options.host,
        latency_seconds=options.latency_ms / 1000,
        code_ttl_seconds=options.code_ttl,
    )
    with standin:
        for name, url in standin.accounts_servers.items():
            print(f"{name}: {url}")
        print(f"BROKER_ZOHO_ACCOUNTS_SERVERS='{json.dumps(standin.accounts_servers)}'")
        print("Press Ctrl-C to stop.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()

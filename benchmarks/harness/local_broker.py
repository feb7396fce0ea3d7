"""`make dev`'s broker (moto's server, the Zoho stand-in over HTTP, the local gateway) for the benchmarks
that call it over HTTP, and the percentile they report."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def local_broker(log_level: str) -> Iterator[dict[str, Any]]:
    """The local runner on free ports, without the demo subscriptions; yields what it started."""
    from broker_local.runner import Options, free_port, running_broker

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    options = Options(
        port=free_port("127.0.0.1"),
        standin_ports=(free_port("127.0.0.1"), free_port("127.0.0.1")),
        demo=False,
        log_level=log_level,
    )
    with running_broker(options) as started:
        yield started


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the value below which ``fraction`` of the values lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

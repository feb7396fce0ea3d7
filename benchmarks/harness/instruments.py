"""Instrumentation: AWS calls and their time per phase, Zoho time, log output, outcomes per message."""

from __future__ import annotations

import inspect
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .common import Handler


class CallCounter:
    """Counts AWS API calls (not retry attempts) by (service, operation) into the current phase, and
    adds up their wall time.

    It starts at before-parameter-build, which every call emits once before anything can answer it, and
    stops at after-call, which comes with the answer (moto's, or FastQueue's).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.phase = "setup"
        self.by_phase: dict[str, Counter[tuple[str, str]]] = {}
        self.seconds_by_phase: dict[str, float] = {}

    def attach(self, client: Any) -> None:
        """Count a client's calls, or a botocore session's (every client made from it)."""
        events = client.meta.events if hasattr(client, "meta") else client
        events.register("before-parameter-build", self._start, unique_id=f"count-{id(self)}")
        events.register("after-call", self._stop, unique_id=f"count-stop-{id(self)}")

    def _start(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        context["bench_started"] = time.perf_counter()
        key = (str(model.service_model.service_name), str(model.name))
        with self._lock:
            self.by_phase.setdefault(self.phase, Counter())[key] += 1

    def _stop(self, context: dict[str, Any], **_: Any) -> None:
        started = context.get("bench_started")
        if started is not None:
            with self._lock:
                self.seconds_by_phase[self.phase] = (
                    self.seconds_by_phase.get(self.phase, 0.0) + time.perf_counter() - started
                )

    def take(self, phase: str) -> tuple[Counter[tuple[str, str]], float]:
        with self._lock:
            return self.by_phase.pop(phase, Counter()), self.seconds_by_phase.pop(phase, 0.0)


class ZohoTimer:
    """Adds up the wall time of the broker's Zoho token calls (wraps the one ZohoClient's refresh)."""

    def __init__(self, zoho: Any) -> None:
        self._lock = threading.Lock()
        self.seconds = 0.0
        original = zoho.refresh

        def timed(**kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(**kwargs)
            finally:
                with self._lock:
                    self.seconds += time.perf_counter() - started

        zoho.refresh = timed

    def take(self) -> float:
        with self._lock:
            taken, self.seconds = self.seconds, 0.0
            return taken


class OutputSink:
    """Stands in for stdout while the broker runs: its JSON logs and EMF metrics are counted, not shown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes = 0
        self.lines = 0

    def write(self, text: str) -> int:
        with self._lock:
            self.bytes += len(text.encode())
            self.lines += text.count("\n")
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False

    def take(self) -> tuple[int, int]:
        with self._lock:
            taken = (self.bytes, self.lines)
            self.bytes = self.lines = 0
            return taken


@dataclass
class Tally:
    """What the pollers and the worker instances saw during one refresh phase."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    outcomes: Counter[str] = field(default_factory=Counter)
    handler_errors: Counter[str] = field(default_factory=Counter)
    message_ids: Counter[str] = field(default_factory=Counter)
    invocations: int = 0
    handler_seconds: float = 0.0
    reported_failures: int = 0
    sqs_seconds: float = 0.0

    def outcome(self, value: str) -> None:
        with self.lock:
            self.outcomes[value] += 1

    @property
    def handled(self) -> int:
        with self.lock:
            return sum(self.outcomes.values())

    @property
    def duplicate_deliveries(self) -> int:
        return sum(count - 1 for count in self.message_ids.values())


def instrument(handler: Handler, tally: Tally) -> None:
    """Record each message's outcome by wrapping the module's record handler (looked up per invocation)."""
    module_globals = inspect.unwrap(handler).__globals__
    original: Callable[[Any], str] = module_globals["refresh_one"]

    def counted(record: Any) -> str:
        try:
            result = original(record)
        except Exception as error:
            tally.outcome(f"raised {type(error).__name__}")
            raise
        tally.outcome(result)
        return result

    module_globals["refresh_one"] = counted

"""Every admin route, fuzzed from the API's own OpenAPI document with schemathesis.

For each operation, schemathesis' coverage cases (boundary values, missing and wrong-typed fields, other
methods on the path) and then random valid and invalid requests go over HTTP to the local gateway. Each
answer must be one the document declares for the operation, with the declared content type and schema,
and never a 5xx; a method the path does not serve must get a 405 with Allow. Operations on a subscription
get their requests twice: with generated ids (mostly 404) and with a real one: a plain subscription, a
connected one for the token routes, and a new one for each delete.

    pytest tests/integration/test_openapi_fuzz.py -q    # prints "admin API fuzz: N requests in ..."
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from flow import connect, create_subscription
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from broker_local.gateway import LocalApiGateway

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    unsupported_method,
]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# Random requests per operation, mode and kind of id, on top of the coverage cases.
FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same requests on every run
    database=None,
    phases=[Phase.generate],  # failures are recorded, not raised: there is nothing to shrink
    suppress_health_check=list(HealthCheck),
)
NEW_SUBSCRIPTION = "a-new-subscription-for-each-request"

Operation = APIOperation[Any, Any, Any, Any]
Ids = dict[str, str] | None
Send = Callable[[Case[Any], Ids], None]


@dataclass
class Tally:
    requests: int = 0
    server_errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # operation, failure and status: how often
    examples: dict[str, str] = field(default_factory=dict)  # the same: what the first one was

    def record(self, case: Case[Any], response: schemathesis.Response) -> None:
        self.requests += 1
        self.statuses[response.status_code] += 1
        self.server_errors += response.status_code >= 500
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = f"{case.operation.label}: {failure.title} ({response.status_code})"
                self.failures[key] += 1
                self.examples.setdefault(key, f"{failure.message[:600]}\n    {case.as_curl_command()[:600]}")

    def summary(self, seconds: float) -> str:
        statuses = " ".join(f"{status}:{count}" for status, count in sorted(self.statuses.items()))
        return (
            f"admin API fuzz: {self.requests} requests in {seconds:.0f}s, {self.server_errors} 5xx, "
            f"{self.failures.total()} conformance failures (statuses {statuses})"
        )

    def report(self) -> str:
        return "\n".join(
            f"{count} x {key}: {self.examples[key]}" for key, count in sorted(self.failures.items())
        )


def _id_kinds(operation: Operation, subscriptions: dict[str, str]) -> list[Ids]:
    """Generated ids for every operation, and a real id as well for the operations that take one."""
    if "{subscription_id}" not in operation.path:
        return [None]
    if operation.method.upper() == "DELETE":
        real = NEW_SUBSCRIPTION
    elif operation.path.endswith(("/token", "/refresh", "/revoke")):
        real = subscriptions["connected"]
    else:
        real = subscriptions["plain"]
    return [None, {"subscription_id": real}]


def _operations(schema: BaseSchema) -> Iterator[Operation]:
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the document describes an operation so badly that nothing can be sent
        yield result.ok()


def _coverage_cases(operation: Operation) -> Iterable[Case[Any]]:
    schema: BaseSchema = operation.schema
    config = schema.config.generation_for(operation=operation, phase="coverage")
    return schema.iter_coverage_cases(operation, generation_modes=list(MODES), generation_config=config)


def _fuzz(operation: Operation, mode: GenerationMode, ids: Ids, send: Send) -> None:
    @FUZZ
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=ids))
    def run(case: Case[Any]) -> None:
        send(case, None)

    try:
        run()
    except Unsatisfiable:
        # Nothing is left to make invalid when the real id is the operation's only parameter.
        if mode != GenerationMode.NEGATIVE:
            raise


def test_every_admin_route_answers_as_its_openapi_document_says(
    gateway: LocalApiGateway,
    admin: httpx.Client,
    browser: httpx.Client,
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    schema = schemathesis.openapi.from_dict(admin.get("/admin/openapi.json").json())
    schema.config.update(base_url=gateway.base_url)
    # HTTP APIs route GET, POST, PUT, PATCH, DELETE, HEAD and OPTIONS; the local gateway (http.server)
    # answers 501 itself to the TRACE and QUERY that schemathesis would also try.
    schema.config.phases.coverage.unexpected_methods = {"get", "post", "put", "patch", "delete", "options"}
    connected = create_subscription(admin, name="Fuzz connected")["subscription_id"]
    assert connect(admin, browser, connected).status_code == 200
    plain = create_subscription(admin, name="Fuzz plain")["subscription_id"]
    names = itertools.count()
    tally = Tally()

    with requests.Session() as session:

        def send(case: Case[Any], ids: Ids) -> None:
            if ids is not None:
                case.path_parameters = {**(case.path_parameters or {}), **ids}
            if case.path_parameters and case.path_parameters.get("subscription_id") == NEW_SUBSCRIPTION:
                created = create_subscription(admin, name=f"Fuzz deleted {next(names)}")
                case.path_parameters["subscription_id"] = created["subscription_id"]
            tally.record(case, case.call(session=session))

        # In document order, which sends revoke (it disconnects) after the token and refresh routes.
        for operation in _operations(schema):
            for ids in _id_kinds(operation, {"connected": connected, "plain": plain}):
                for case in _coverage_cases(operation):
                    send(case, ids)
                for mode in MODES:
                    _fuzz(operation, mode, ids, send)

    summary = tally.summary(time.monotonic() - started)
    with capsys.disabled():
        print(f"\n{summary}")
    assert tally.server_errors == 0 and not tally.failures, f"{summary}\n{tally.report()}"

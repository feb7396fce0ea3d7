"""Hooks on the broker's own AWS clients: DynamoDB answering in small pages (as it does past 1 MB or at
a request's Limit), and counting the calls a flow makes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError

from zoho_broker.store import aws


@contextmanager
def dynamodb_pages_of(size: int, operation: str) -> Iterator[None]:
    """Every ``operation`` (Scan, Query) of the broker's DynamoDB client answers at most ``size`` items
    a page, so a reader that stops after the first page misses the rest."""

    def limit(params: dict[str, Any], **_: Any) -> None:
        params["Limit"] = size

    client = aws.dynamodb()
    event = f"before-parameter-build.dynamodb.{operation}"
    client.meta.events.register(event, limit, unique_id="small-pages")
    try:
        yield
    finally:
        client.meta.events.unregister(event, unique_id="small-pages")


@contextmanager
def counted_calls(client: Any, operation: str) -> Iterator[list[dict[str, Any]]]:
    """The parameters of every ``operation`` call ``client`` makes meanwhile, in order."""
    calls: list[dict[str, Any]] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    event = f"before-parameter-build.{client.meta.service_model.service_id.hyphenize()}.{operation}"
    unique = f"counted-calls-{operation}"  # one per operation: counts of two operations may nest
    client.meta.events.register(event, count, unique_id=unique)
    try:
        yield calls
    finally:
        client.meta.events.unregister(event, unique_id=unique)


@contextmanager
def failing_once(
    client: Any,
    operation: str,
    code: str,
    message: str = "injected by the test",
    *,
    when: Callable[[dict[str, Any]], bool] = lambda _: True,
) -> Iterator[list[dict[str, Any]]]:
    """The first ``operation`` call of ``client`` that ``when`` picks fails with AWS error ``code``, as the
    service would answer it; yields the parameters of the call that failed (empty if none did)."""
    failed: list[dict[str, Any]] = []

    def fail(params: dict[str, Any], **_: Any) -> None:
        if not failed and when(params):
            failed.append(dict(params))
            raise ClientError({"Error": {"Code": code, "Message": message}}, operation)

    event = f"before-parameter-build.{client.meta.service_model.service_id.hyphenize()}.{operation}"
    unique = f"failing-once-{operation}"
    client.meta.events.register(event, fail, unique_id=unique)
    try:
        yield failed
    finally:
        client.meta.events.unregister(event, unique_id=unique)

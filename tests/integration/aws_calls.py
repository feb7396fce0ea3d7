"""Hooks on the broker's own AWS clients: DynamoDB answering in small pages (as it does past 1 MB or at
a request's Limit), counting the calls a flow makes, and a call failing as the service would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError

from zoho_broker.store import aws


@contextmanager
def on_call(
    client: Any,
    operation: str,
    hook: Callable[..., None],
    *,
    name: str,
    stage: str = "before-parameter-build",
) -> Iterator[None]:
    """``hook(params=...)`` runs before each ``operation`` call of ``client`` is built, meanwhile: it may
    change the parameters, wait, or raise as the service would. ``name`` with the operation identifies the
    hook, so hooks of different operations (or names) nest. ``stage="after-call"``: ``hook(parsed=...)``
    sees the answer instead, and may change it."""
    event = f"{stage}.{client.meta.service_model.service_id.hyphenize()}.{operation}"
    unique = f"{name}-{operation}"
    client.meta.events.register(event, hook, unique_id=unique)
    try:
        yield
    finally:
        client.meta.events.unregister(event, unique_id=unique)


@contextmanager
def dynamodb_pages_of(size: int, operation: str) -> Iterator[None]:
    """Every ``operation`` (Scan, Query) of the broker's DynamoDB client answers at most ``size`` items
    a page, so a reader that stops after the first page misses the rest."""

    def limit(params: dict[str, Any], **_: Any) -> None:
        params["Limit"] = size

    with on_call(aws.dynamodb(), operation, limit, name="small-pages"):
        yield


@contextmanager
def counted_calls(client: Any, operation: str) -> Iterator[list[dict[str, Any]]]:
    """The parameters of every ``operation`` call ``client`` makes meanwhile, in order."""
    calls: list[dict[str, Any]] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    with on_call(client, operation, count, name="counted-calls"):
        yield calls


@contextmanager
def failing_once(
    client: Any,
    operation: str,
    code: str,
    message: str = "injected by the test",
    *,
    when: Callable[[dict[str, Any]], bool] = lambda _: True,
    reasons: tuple[str, ...] = (),
) -> Iterator[list[dict[str, Any]]]:
    """The first ``operation`` call of ``client`` that ``when`` picks fails with AWS error ``code``, as the
    service would answer it; yields the parameters of the call that failed (empty if none did).
    ``reasons``: a cancelled transaction's first items' reasons (the rest "None", one per item)."""
    failed: list[dict[str, Any]] = []

    def fail(params: dict[str, Any], **_: Any) -> None:
        if not failed and when(params):
            failed.append(dict(params))
            answer: dict[str, Any] = {"Error": {"Code": code, "Message": message}}
            if reasons:
                rest = ["None"] * (len(params["TransactItems"]) - len(reasons))
                answer["CancellationReasons"] = [{"Code": reason} for reason in (*reasons, *rest)]
            raise ClientError(answer, operation)  # type: ignore[arg-type]

    with on_call(client, operation, fail, name="failing-once"):
        yield failed

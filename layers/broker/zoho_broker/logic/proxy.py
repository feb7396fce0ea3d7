"""One proxied call: a sync job's request sent to its subscription's Zoho API with the subscription's
token and headers, inside the subscription's throttling; Zoho's answer handed back as it came.

What a Lambda instance may keep between calls it keeps (the subscription for a few seconds, the access
token until five minutes before it expires), so a warm call costs two DynamoDB requests (the throttle's
claim and release) and no Secrets Manager read.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Literal

import httpx
from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field

from zoho_broker import api_base as api_target
from zoho_broker.catalogue import IntegrationVersion
from zoho_broker.errors import BrokerError, InvalidInput, PayloadTooLarge, ServiceUnavailable, ZohoError
from zoho_broker.logic import refresh
from zoho_broker.logic.throttle import Throttle
from zoho_broker.logic.token_recovery import recover_token
from zoho_broker.models import ConnectionStatus, Subscription
from zoho_broker.proxy_rules import (
    MAX_ANSWER_BODY_BYTES,
    MAX_REQUEST_BODY_BYTES,
    answer_headers,
    forwarded_headers,
    target_url,
)
from zoho_broker.services import Services
from zoho_broker.store.throttle import ThrottleStore

logger = Logger(child=True)

# A sync job may ask to wait for its turn (X-Broker-Max-Wait) rather than get 429 at once; bounded so
# the wait, two Zoho calls and a refresh stay inside the function's timeout.
MAX_WAIT_SECONDS = 10.0
# Settings change rarely and a changed throttling may take this long to apply in a warm instance.
SUBSCRIPTION_CACHE_SECONDS = 15.0
# The retry after a refused token waits this long at most for its turn, even when the caller asked for none.
RETRY_WAIT_SECONDS = 5.0
TOKEN_MARGIN = timedelta(minutes=5)
# Zoho's "too many requests" without a Retry-After: the subscription pauses this long.
DEFAULT_ZOHO_BACKOFF_SECONDS = 5
MAX_ZOHO_BACKOFF_SECONDS = 60
INVALID_TOKEN = b"INVALID_OAUTHTOKEN"
TOO_MANY_REQUESTS = b"TOO_MANY_REQUESTS"

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class ProxyCall(BaseModel):
    """A proxied request as the handler read it from API Gateway's event."""

    model_config = ConfigDict(frozen=True)

    subscription_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    method: Method
    raw_path: str = Field(max_length=4096)
    raw_query: str = Field(default="", max_length=8192)
    headers: dict[str, str] = Field(default_factory=dict)
    body: bytes = b""
    wait_seconds: float = Field(default=0.0, ge=0, le=MAX_WAIT_SECONDS)


@dataclass(frozen=True)
class ProxyAnswer:
    status_code: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class _Target:
    subscription: Subscription
    version: IntegrationVersion
    loaded_at: float


@dataclass(frozen=True)
class _Token:
    access_token: str
    usable_until: float  # epoch seconds: five minutes before it expires


@dataclass
class ProxyRuntime:
    """What one Lambda instance keeps between calls: caches, the throttle, the HTTP client."""

    services: Services
    throttle: Throttle
    http: httpx.Client
    targets: dict[str, _Target] = field(default_factory=dict)
    tokens: dict[str, _Token] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def make(cls, services: Services) -> ProxyRuntime:
        settings = services.settings
        if not settings.throttle_table:
            raise RuntimeError("BROKER_THROTTLE_TABLE is not set: the proxy cannot throttle")
        return cls(
            services=services,
            throttle=Throttle(
                ThrottleStore(settings.throttle_table),
                services.clock,
                slot_seconds=settings.proxy_slot_seconds,
            ),
            http=services.zoho_api,
        )

    def target(self, subscription_id: str) -> _Target:
        now = self.services.clock.monotonic()
        cached = self.targets.get(subscription_id)
        if cached is not None and now - cached.loaded_at < SUBSCRIPTION_CACHE_SECONDS:
            return cached
        subscription = self.services.subscriptions.require(subscription_id)
        version = self.services.catalogue.get(subscription.integration).get_version(subscription.version)
        loaded = _Target(subscription, version, now)
        self.targets[subscription_id] = loaded
        return loaded

    def token(self, subscription_id: str) -> str:
        cached = self.tokens.get(subscription_id)
        if cached is not None and cached.usable_until > self.services.clock.time():
            return cached.access_token
        vended = refresh.vend_token(self.services, subscription_id)
        self.remember(subscription_id, vended.access_token, (vended.expires_at - TOKEN_MARGIN).timestamp())
        return vended.access_token

    def remember(self, subscription_id: str, access_token: str, usable_until: float) -> None:
        self.tokens[subscription_id] = _Token(access_token, usable_until)

    def forget(self, subscription_id: str) -> None:
        self.tokens.pop(subscription_id, None)
        self.targets.pop(subscription_id, None)


def forward(runtime: ProxyRuntime, call: ProxyCall) -> ProxyAnswer:
    """Send the call to Zoho within the subscription's throttling; Zoho's answer, or a BrokerError."""
    sid = call.subscription_id
    target = runtime.target(sid)
    subscription, version = target.subscription, target.version
    if subscription.status != ConnectionStatus.CONNECTED:
        runtime.forget(sid)
        refresh.require_connected(subscription)
    base = api_target.api_base(
        api_url=subscription.api_url,
        data_centre=subscription.data_centre,
        api_domain=subscription.api_domain,
        accounts_servers=runtime.services.accounts_servers,
    )
    url = target_url(
        base,
        call.raw_path,
        call.raw_query,
        api_target.api_query_parameters(version, subscription.custom_fields),
    )
    headers = forwarded_headers(call.headers, api_target.api_headers(version, subscription.custom_fields))
    if len(call.body) > MAX_REQUEST_BODY_BYTES:
        raise PayloadTooLarge(
            f"The request body is larger than {MAX_REQUEST_BODY_BYTES // (1024 * 1024)} MiB, the most a "
            "Lambda-backed proxy can carry; call Zoho directly with the client's token() for larger uploads."
        )
    token = runtime.token(sid)
    answer = _send(runtime, call, url, headers, token, subscription)
    if answer.status_code == 401 and INVALID_TOKEN in answer.content:
        runtime.forget(sid)
        renewed = recover_token(runtime.services, sid, rejected=token)
        if renewed is not None:
            runtime.remember(sid, renewed.access_token, (renewed.expires_at - TOKEN_MARGIN).timestamp())
            logger.info(
                "token refused by Zoho was replaced; call retried once", extra={"subscription_id": sid}
            )
            # The retry is the same call: it may wait for the turn after the refused one (briefly).
            turn_seconds = 60 / subscription.throttling.requests_per_minute
            retry = call.model_copy(
                update={"wait_seconds": max(call.wait_seconds, min(RETRY_WAIT_SECONDS, turn_seconds + 0.1))}
            )
            answer = _send(runtime, retry, url, headers, renewed.access_token, subscription)
    return _answer(runtime, sid, answer)


def _send(
    runtime: ProxyRuntime,
    call: ProxyCall,
    url: str,
    headers: dict[str, str],
    token: str,
    subscription: Subscription,
) -> httpx.Response:
    turn = runtime.throttle.acquire(
        subscription.subscription_id, subscription.throttling, wait_seconds=call.wait_seconds
    )
    try:
        return runtime.http.request(
            call.method,
            url,
            headers={**headers, "authorization": f"Zoho-oauthtoken {token}"},
            content=call.body or None,
        )
    except httpx.TimeoutException as error:
        raise ZohoError(
            "Zoho did not answer in time; the call may or may not have been carried out: check, then try again.",
            zoho_code="timeout",
            transient=True,
        ) from error
    except httpx.HTTPError as error:
        raise ZohoError(
            "Zoho could not be reached; nothing was sent: try again shortly.",
            zoho_code="unreachable",
            transient=True,
        ) from error
    finally:
        runtime.throttle.release(turn)


def _answer(runtime: ProxyRuntime, sid: str, response: httpx.Response) -> ProxyAnswer:
    headers = answer_headers(response.headers.multi_items())
    if zoho_says_too_many_requests(response.status_code, response.content):
        pause = zoho_pause_seconds(response.headers.get("retry-after"))
        try:
            runtime.throttle.slow_down(sid, pause)
        except ServiceUnavailable:
            logger.warning("could not slow the subscription down", extra={"subscription_id": sid})
        headers["retry-after"] = str(pause)
        logger.warning("Zoho answered too many requests", extra={"subscription_id": sid, "pause": pause})
    if len(response.content) > MAX_ANSWER_BODY_BYTES:
        raise AnswerTooLarge(
            f"Zoho's answer is larger than {MAX_ANSWER_BODY_BYTES // (1024 * 1024)} MiB, more than Lambda can "
            "return; ask for smaller pages (per_page) or call Zoho directly with the client's token()."
        )
    return ProxyAnswer(response.status_code, headers, response.content)


def zoho_says_too_many_requests(status_code: int, content: bytes) -> bool:
    """A 429, or an error whose first 4 KiB name TOO_MANY_REQUESTS (Zoho puts its code at the start; a
    large body is not searched further)."""
    return status_code == 429 or (status_code >= 400 and TOO_MANY_REQUESTS in content[:4096])


def zoho_pause_seconds(retry_after: str | None) -> int:
    """How long a subscription pauses after Zoho's "too many requests", from Zoho's Retry-After: whole
    seconds, at least 1 and at most a minute; the sync job is told the same in its Retry-After."""
    try:
        seconds = int(retry_after) if retry_after is not None else DEFAULT_ZOHO_BACKOFF_SECONDS
    except ValueError:
        seconds = DEFAULT_ZOHO_BACKOFF_SECONDS
    return min(MAX_ZOHO_BACKOFF_SECONDS, max(1, seconds))


class AnswerTooLarge(BrokerError):
    """Zoho answered with more than a Lambda can return: not worth retrying as it is (502, not 503)."""

    status_code = 502
    code = "answer_too_large"


def parse_wait(value: str | None) -> float:
    """X-Broker-Max-Wait: seconds the caller accepts to wait for its turn (0 to 10)."""
    if value is None or not value.strip():
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_WAIT_SECONDS:
        raise InvalidInput(
            f"X-Broker-Max-Wait is a number of seconds from 0 to {MAX_WAIT_SECONDS:g}.",
            [{"field": "header.x-broker-max-wait", "message": f"0 to {MAX_WAIT_SECONDS:g}"}],
        )
    return seconds

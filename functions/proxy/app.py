"""Proxy (AWS_IAM): /proxy/{subscription_id}/{path+} for every method, forwarded to the subscription's
Zoho API within its throttling. Parse the event, call the core, shape the answer; nothing else here."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from zoho_broker.errors import BrokerError, ZohoError
from zoho_broker.logic.proxy import ProxyAnswer, ProxyCall, ProxyRuntime, forward, parse_wait
from zoho_broker.logic.throttle import Throttled
from zoho_broker.observability import logger, metrics
from zoho_broker.services import get_services
from zoho_broker.store.aws import is_unavailable

PREFIX = "/proxy/"


_runtime: list[ProxyRuntime] = []


def runtime() -> ProxyRuntime:
    """One per Lambda instance: its caches and connections serve every warm invocation (made again
    only when the services are, as tests and the local runner do)."""
    services = get_services()
    if not _runtime or _runtime[0].services is not services:
        _runtime[:] = [ProxyRuntime.make(services)]
    return _runtime[0]


def read_call(event: dict[str, Any]) -> ProxyCall:
    """The call as API Gateway (payload format 2.0) delivered it; the raw path, so that encoded slashes
    and dot segments are seen as the caller sent them."""
    raw_path = str(event.get("rawPath", ""))
    subscription_id, _, rest = raw_path.removeprefix(PREFIX).partition("/")
    headers = {str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()}
    body = event.get("body") or ""
    try:
        content = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode()
    except (binascii.Error, UnicodeEncodeError) as error:
        raise BrokerError("The request body could not be decoded.") from error
    return ProxyCall(
        subscription_id=subscription_id,
        method=str(event.get("requestContext", {}).get("http", {}).get("method", "")).upper(),
        raw_path=rest,
        raw_query=str(event.get("rawQueryString") or ""),
        headers=headers,
        body=content,
        wait_seconds=parse_wait(headers.get("x-broker-max-wait")),
    )


def _error(status: int, code: str, message: str, **headers: str) -> dict[str, Any]:
    """The broker's own refusals: JSON, marked with X-Broker-Error so a client never takes them for Zoho's."""
    return {
        "statusCode": status,
        "headers": {
            "content-type": "application/json",
            "cache-control": "no-store",
            "x-broker-error": code,
            **headers,
        },
        "body": json.dumps({"error": code, "message": message}),
        "isBase64Encoded": False,
    }


def _shaped(answer: ProxyAnswer) -> dict[str, Any]:
    # Always base64: Zoho's body passes through byte for byte, whatever its type.
    return {
        "statusCode": answer.status_code,
        "headers": answer.headers,
        "body": base64.b64encode(answer.body).decode("ascii"),
        "isBase64Encoded": True,
    }


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        call = read_call(event)
        logger.append_keys(subscription_id=call.subscription_id)
        return _shaped(forward(runtime(), call))
    except Throttled as throttled:
        return _error(429, throttled.code, throttled.message, **{"retry-after": throttled.retry_after_header})
    except ValidationError as error:
        fields = ", ".join(".".join(str(part) for part in problem["loc"]) for problem in error.errors())
        return _error(400, "invalid_request", f"The request is invalid: check {fields}.")
    except BrokerError as error:
        why = {"zoho_code": error.zoho_code} if isinstance(error, ZohoError) else {}
        logger.info("proxy call refused", extra={"error": error.code, "reason": error.message, **why})
        return _error(error.answer_status, error.code, error.message)
    except Exception as error:
        if is_unavailable(error):
            return _error(
                503, "service_unavailable", "AWS did not answer; nothing was sent to Zoho: try again shortly."
            )
        logger.exception("unexpected error")
        return _error(500, "internal_error", "The broker could not finish this request.")

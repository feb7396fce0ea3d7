"""Fault injection at the two edges the broker talks through: botocore clients and the Zoho client's
HTTP transport.

A ``CallLog`` numbers every AWS and Zoho call a flow makes. Run once without faults it yields the
flow's calls; run again with ``fail_at`` set, it makes exactly that call fail once, in one of the ways
that service really fails. A call added to a flow is enumerated without anyone writing a case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from zoho_broker.services import Services
from zoho_broker.store import aws
from zoho_broker.zoho_client import ZohoClient

AWS_FAULTS = ("throttled", "timeout", "unreachable")
ZOHO_FAULTS = ("http_503", "timeout", "access_denied_200", "rate_limited_200")
# Zoho's API (the connection's verification call): how it fails, as the stand-in's API answers.
API_FAULTS = ("http_503", "timeout", "too_many_requests_429", "invalid_oauthtoken_401", "not_json_200")
RATE_LIMITED = "You have made too many requests continuously. Please try again after some time."


@dataclass(frozen=True)
class Call:
    service: str  # "dynamodb", "secretsmanager", "events", "sqs" or "zoho"
    operation: str

    @property
    def faults(self) -> tuple[str, ...]:
        if self.service == "zoho":
            return API_FAULTS if self.operation == "api" else ZOHO_FAULTS
        return AWS_FAULTS

    def __str__(self) -> str:
        return f"{self.service}.{self.operation}"


@dataclass
class CallLog:
    calls: list[Call] = field(default_factory=list)
    fail_at: int | None = None
    fault: str = ""
    failed: Call | None = None

    def next(self, call: Call) -> str | None:
        """Record a call; the fault to inject into it, if it is the one chosen."""
        index = len(self.calls)
        self.calls.append(call)
        if index == self.fail_at:
            self.failed = call
            return self.fault
        return None

    def stop(self) -> None:
        self.fail_at = None


def _aws_error(fault: str, operation: str) -> Exception:
    if fault == "throttled":
        return ClientError(
            {
                "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            operation,
        )
    if fault == "timeout":
        return ReadTimeoutError(endpoint_url=f"https://aws.invalid/{operation}")
    return EndpointConnectionError(endpoint_url=f"https://aws.invalid/{operation}")


_CRM_ERROR = '{{"code": "{}", "details": {{}}, "message": "{}", "status": "error"}}'
_API_ANSWERS = {
    "too_many_requests_429": (429, _CRM_ERROR.format("TOO_MANY_REQUESTS", "too many requests").encode()),
    "invalid_oauthtoken_401": (401, _CRM_ERROR.format("INVALID_OAUTHTOKEN", "invalid oauth token").encode()),
    "not_json_200": (200, b"<html><body>Maintenance</body></html>"),
}


class _ZohoTransport(httpx.BaseTransport):
    def __init__(self, log: CallLog, inner: httpx.BaseTransport) -> None:
        self._log = log
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/oauth/"):
            operation = "revoke" if request.url.path.endswith("/revoke") else "token"
        else:
            operation = "api"
        fault = self._log.next(Call("zoho", operation))
        if fault == "timeout":  # never reached Zoho
            raise httpx.ReadTimeout("injected", request=request)
        if fault == "http_503":
            return httpx.Response(503, text="Service Unavailable", request=request)
        if fault in _API_ANSWERS:
            status, body = _API_ANSWERS[fault]
            return httpx.Response(status, content=body, request=request)
        if fault == "access_denied_200":
            return httpx.Response(200, json={"error": "Access Denied"}, request=request)
        if fault == "rate_limited_200":
            body = {"error": "access_denied", "error_description": RATE_LIMITED}
            return httpx.Response(200, content=json.dumps(body).encode(), request=request)
        return self._inner.handle_request(request)


def install(log: CallLog, services: Services, *, zoho_timeout_seconds: float = 2.0) -> None:
    """Route the process's AWS clients and this Services' Zoho client through ``log``."""

    def before_call(model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        fault = log.next(Call(service, model.name))
        if fault is not None:
            raise _aws_error(fault, model.name)

    for client in (aws.dynamodb(), aws.secretsmanager(), aws.events(), aws.sqs()):
        client.meta.events.register("before-call", before_call, unique_id="fault-injection")
    transport = _ZohoTransport(log, httpx.HTTPTransport())
    services.__dict__["zoho"] = ZohoClient(timeout_seconds=zoho_timeout_seconds, transport=transport)
    # The proxy's calls to Zoho's API go through their own client.
    services.__dict__["zoho_api"] = httpx.Client(timeout=zoho_timeout_seconds, transport=transport)

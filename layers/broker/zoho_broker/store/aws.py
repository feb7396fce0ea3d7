"""AWS clients, made once per process with timeouts and standard retries.

They are botocore's clients, the very ones boto3.client returns, made from a botocore session: importing
boto3 imports its resource layer and s3transfer too, which the broker never uses and which cost a bare
boto3 handler about a third of its cold start.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# Inside a region AWS answers in milliseconds: a short connect timeout turns an outage into a fast 503.
_CONFIG = Config(connect_timeout=1, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})

# Error codes meaning "the service is overloaded or failing, the request changed nothing": retry later.
_UNAVAILABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalFailure",
        "InternalServiceError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "TransactionConflictException",
        "TransactionInProgressException",
    }
)
_UNAVAILABLE_REASONS = frozenset({"ThrottlingError", "TransactionConflict", "ProvisionedThroughputExceeded"})


def is_unavailable(error: BaseException) -> bool:
    """Whether an AWS call failed for a passing reason (throttled, timed out, unreachable, 5xx).

    Wrappers (an error raised from another) are looked through.
    """
    underlying = error.__cause__ or error.__context__
    if underlying is not None and is_unavailable(underlying):
        return True
    if isinstance(error, ConnectionError | HTTPClientError):
        return True
    if not isinstance(error, ClientError):
        return False
    code = error.response.get("Error", {}).get("Code", "")
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code == "TransactionCanceledException":
        reasons = {reason.get("Code") for reason in error.response.get("CancellationReasons", [])}
        return bool(reasons & _UNAVAILABLE_REASONS)
    return code in _UNAVAILABLE_CODES or status >= 500


@cache
def _session() -> botocore.session.Session:
    # One per process, as boto3's default session: credentials and endpoints are resolved once.
    return botocore.session.get_session()


def _client(service: str) -> Any:
    return _session().create_client(service, config=_CONFIG)


@cache
def dynamodb() -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb")
    return client


@cache
def secretsmanager() -> SecretsManagerClient:
    client: SecretsManagerClient = _client("secretsmanager")
    return client


@cache
def sqs() -> SQSClient:
    client: SQSClient = _client("sqs")
    return client


@cache
def events() -> EventBridgeClient:
    client: EventBridgeClient = _client("events")
    return client


def reset() -> None:
    """Forget the session and the clients (tests switch between moto backends and credentials)."""
    for factory in (_session, dynamodb, secretsmanager, sqs, events):
        factory.cache_clear()

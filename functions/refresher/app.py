"""Scheduled (EventBridge): refresh the access tokens that expire soon, fanning out through SQS."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from zoho_broker.logic import refresh
from zoho_broker.observability import logger, metrics
from zoho_broker.services import get_services


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    return asdict(refresh.sweep(get_services()))

"""SQS worker: refresh the queued subscriptions; a message that fails goes back to the queue alone."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from zoho_broker.errors import NotFound
from zoho_broker.logic import refresh
from zoho_broker.observability import logger, metrics
from zoho_broker.services import get_services

processor = BatchProcessor(event_type=EventType.SQS)


class RefreshMessage(BaseModel):
    subscription_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


def refresh_one(record: SQSRecord) -> str:
    message = RefreshMessage.model_validate(json.loads(record.body))
    sid = message.subscription_id
    try:
        outcome = refresh.refresh_queued(get_services(), sid)
    except NotFound:
        logger.info("queued subscription no longer exists", extra={"subscription_id": sid})
        return "gone"
    # Zoho's transient failures, deferrals and lost leases are rescheduled through the index (with
    # backoff), not through SQS; each outcome is logged and counted where it happens.
    return outcome.result.value


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=refresh_one, processor=processor, context=context
    )

"""The shared Logger; handlers decorate with it, nothing else configures logging."""

from __future__ import annotations

from aws_lambda_powertools import Logger

# Service name and level come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_LOG_LEVEL (template Globals).
logger = Logger()

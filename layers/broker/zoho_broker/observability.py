"""The shared Logger; handlers decorate with it, nothing else configures logging."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

# Service name, level and namespace come from POWERTOOLS_* variables (template Globals).
logger = Logger()
metrics = Metrics()

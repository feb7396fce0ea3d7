"""What `make dev` prints: one line per request and one per refresh run, unless --log-level asks for more.

Three sources used to drown those lines, each silenced where it starts:
- botocore logs every client it makes ("Found endpoint for sqs via: environment_global.", "Found
  credentials in environment variables.") at INFO: its loggers stay at WARNING, so its errors still show;
- Powertools Metrics prints an EMF blob to stdout after every invocation (CloudWatch reads them from a
  Lambda's stdout): locally the metrics go to a logger at DEBUG instead;
- Powertools warns "No application metrics to publish" after an invocation that recorded none: the
  local provider does not warn, since an invocation without metrics is normal here.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

METRICS_LOGGER = "broker_local.metrics"
# Libraries whose INFO lines describe their own plumbing, not the broker's work.
_PLUMBING = ("botocore", "boto3", "urllib3", "werkzeug", "httpx", "httpcore", "moto")

_metrics_log = logging.getLogger(METRICS_LOGGER)


class LoggedMetricsProvider(AmazonCloudWatchEMFProvider):
    """Powertools' CloudWatch EMF provider writing each flush to a logger (DEBUG) instead of stdout."""

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        if not self.metric_set:
            if raise_on_empty_metrics:
                super().flush_metrics(raise_on_empty_metrics=True)
            return
        if _metrics_log.isEnabledFor(logging.DEBUG):
            _metrics_log.debug("metrics %s", json.dumps(self.serialize_metric_set(), separators=(",", ":")))
        self.clear_metrics()


def log_metrics_locally(metrics: Any) -> None:
    """Swap a Powertools `Metrics` object's provider for the logging one, keeping its shared sets."""
    current = metrics.provider
    metrics.provider = LoggedMetricsProvider(
        namespace=current.namespace,
        service=current.service,
        metric_set=current.metric_set,
        dimension_set=current.dimension_set,
        metadata_set=current.metadata_set,
        default_dimensions=current.default_dimensions,
    )


def configure_logging(level: str) -> None:
    """The runner's own lines at INFO; a `level` below INFO (DEBUG) also opens the libraries' and metrics."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    verbose = logging.getLevelName(level.upper())
    detailed = isinstance(verbose, int) and verbose < logging.INFO
    if detailed:
        logging.getLogger().setLevel(verbose)
    for name in _PLUMBING:
        logging.getLogger(name).setLevel(verbose if detailed else logging.WARNING)


def quiet_metrics() -> None:
    """Once the template's POWERTOOLS_* variables are set (they name the namespace): metrics to the log."""
    from zoho_broker.observability import metrics

    log_metrics_locally(metrics)

"""Names and constants every part of the refresh benchmarks' harness shares."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
WORKER_FUNCTION = "RefreshWorkerFunction"
REFRESHER_FUNCTION = "RefresherFunction"
INTEGRATION = "zoho-crm"
DATA_CENTRE = "us"
REDIRECT_URI = "https://broker.example/oauth/callback"
SECRETS_MANAGER_WRITE_QUOTA = 50.0  # PutSecretValue requests per second per region, not adjustable
REFERENCE_SUBSCRIPTIONS = 5  # seeded through the real admin + connect path
SEED_CHUNK = 500
EXPIRED_AGO = timedelta(minutes=1)
DYNAMODB_BATCH = 25  # BatchWriteItem's maximum
MB = 1024 * 1024

Handler = Callable[[dict[str, Any], Any], Any]
AWS_SETUP = "moto, DynamoDB as a server in a child process, the rest in-process"

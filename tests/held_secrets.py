"""A secret read back exactly as Secrets Manager holds it (not as the broker's model would parse it), so
a test sees what is really stored."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import ClientError


def secret_or_none(name: str, client: Any | None = None) -> dict[str, Any] | None:
    """The secret's JSON, or None when Secrets Manager holds none by that name (never made, or deleted)."""
    secrets = client or boto3.client("secretsmanager")
    try:
        value = secrets.get_secret_value(SecretId=name)
    except ClientError:
        return None
    return dict(json.loads(value["SecretString"]))


def held_secret(name: str, client: Any | None = None) -> dict[str, Any]:
    """The secret's JSON; it must exist."""
    secret = secret_or_none(name, client)
    assert secret is not None, f"Secrets Manager holds no secret {name}"
    return secret

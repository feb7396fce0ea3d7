"""The HMAC key that signs OAuth states, read from Secrets Manager and cached per process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from zoho_broker.store import aws

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

# The key changes only when an operator rotates it; five minutes of caching saves a call per request.
SIGNING_KEY_MAX_AGE_SECONDS = 300


class SigningKeyStore:
    """A small cache of our own: Powertools' SecretsProvider would import boto3 (see store/aws.py)."""

    def __init__(
        self,
        secret_id: str,
        client: SecretsManagerClient | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secret_id = secret_id
        self._client = client or aws.secretsmanager()
        self._clock = clock
        self._cached: tuple[bytes, float] | None = None

    def get(self) -> bytes:
        now = self._clock()
        if self._cached is not None and now - self._cached[1] < SIGNING_KEY_MAX_AGE_SECONDS:
            return self._cached[0]
        value = self._client.get_secret_value(SecretId=self._secret_id).get("SecretString")
        if not isinstance(value, str) or len(value) < 32:
            raise RuntimeError("The state-signing key is missing or shorter than 32 characters.")
        self._cached = (value.encode(), now)
        return self._cached[0]

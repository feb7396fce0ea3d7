"""Subscription secrets (client secret and tokens) in Secrets Manager."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import ValidationError

from zoho_broker.errors import NotFound, SecretUnreadable
from zoho_broker.models import SubscriptionSecret
from zoho_broker.store import aws

logger = Logger(child=True)
# A secret scheduled for deletion answers InvalidRequestException: for the broker it is gone.
_GONE = frozenset({"ResourceNotFoundException", "InvalidRequestException"})

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class SecretStore:
    def __init__(self, prefix: str, client: SecretsManagerClient | None = None) -> None:
        self._prefix = prefix
        self._client = client or aws.secretsmanager()

    def name_for(self, subscription_id: str) -> str:
        return self._prefix + subscription_id

    def create(self, subscription_id: str, secret: SubscriptionSecret) -> None:
        self._client.create_secret(
            Name=self.name_for(subscription_id),
            Description="Zoho OAuth client secret and tokens of one broker subscription.",
            SecretString=secret.model_dump_json(),
            Tags=[{"Key": "zoho-broker:subscription-id", "Value": subscription_id}],
        )

    def get(self, subscription_id: str) -> SubscriptionSecret | None:
        try:
            answer = self._client.get_secret_value(SecretId=self.name_for(subscription_id))
        except ClientError as error:
            if error.response["Error"]["Code"] in _GONE:
                return None
            raise
        try:
            return SubscriptionSecret.model_validate_json(answer["SecretString"])
        except ValidationError as error:
            # pydantic's message quotes the input: log where it is wrong, never what it holds.
            problems = sorted(
                {f"{'.'.join(map(str, e['loc'])) or '(document)'}: {e['type']}" for e in error.errors()}
            )
            logger.error(
                "subscription secret unreadable",
                extra={"subscription_id": subscription_id, "problems": problems},
            )
            raise SecretUnreadable(
                "The subscription's secret in Secrets Manager is not in the broker's format. Restore its "
                "previous version (AWSPREVIOUS) or delete and recreate the subscription."
            ) from None

    def require(self, subscription_id: str) -> SubscriptionSecret:
        secret = self.get(subscription_id)
        if secret is None:
            raise NotFound("The subscription's secret is missing; recreate the subscription.")
        return secret

    def put(self, subscription_id: str, secret: SubscriptionSecret) -> None:
        self._client.put_secret_value(
            SecretId=self.name_for(subscription_id), SecretString=secret.model_dump_json()
        )

    def try_put(self, subscription_id: str, secret: SubscriptionSecret) -> bool:
        """Write the secret; False when Secrets Manager throttled or did not answer (retry it later),
        other errors raise."""
        try:
            self.put(subscription_id, secret)
        except Exception as error:
            if aws.is_unavailable(error):
                return False
            raise
        return True

    def delete(self, subscription_id: str) -> None:
        try:
            self._client.delete_secret(SecretId=self.name_for(subscription_id), RecoveryWindowInDays=7)
        except ClientError as error:
            if error.response["Error"]["Code"] not in _GONE:
                raise

"""Letting go of tokens: disconnecting a subscription, and revoking at Zoho every refresh token it no
longer uses. A token to let go of is first recorded in the secret's pending revocations, so no failure
on the way forgets it: Zoho keeps at most 20 refresh tokens per client and user."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from zoho_broker.errors import Busy, ZohoError
from zoho_broker.logic import lease, schedule
from zoho_broker.models import PendingRevocation, Subscription, SubscriptionSecret, utc_now
from zoho_broker.services import Services

logger = Logger(child=True)


def disconnect(services: Services, subscription_id: str, *, must_revoke: bool = False) -> None:
    """Clear the tokens, end every outstanding connect link, then revoke the refresh token at Zoho.

    The token is first moved to the secret's pending revocations, so a failure at any step leaves it
    recorded: the refresher revokes it later. ``must_revoke`` (deleting) turns a revocation Zoho did
    not confirm into an error, so nothing is deleted while a token may still be alive.
    """
    with lease.held(services, subscription_id, purpose="revoke", wait_seconds=5.0) as held:
        subscription = held.subscription
        secret = services.secrets.require(subscription_id)
        released = release_tokens(secret)
        if released is not secret:
            services.secrets.put(subscription_id, released)
        try:
            services.subscriptions.record_disconnection(
                subscription_id,
                at=utc_now(),
                lease_owner=held.owner,
                revoke_due_at=retry_at(services, subscription) if released.pending_revocations else None,
            )
        except Exception:
            restore_secret(services, subscription_id, secret)
            raise
        held.released = True
    settled = settle_pending(services, subscription_id, recorded=released)
    if must_revoke and settled.pending_revocations:
        raise ZohoError(
            "The subscription is disconnected, but Zoho did not confirm revoking its refresh token; "
            "try again in a few minutes.",
            zoho_code="revoke_pending",
            transient=True,
        )
    logger.info("subscription disconnected", extra={"subscription_id": subscription_id})


def release_tokens(secret: SubscriptionSecret, *, client_id: str | None = None) -> SubscriptionSecret:
    """The secret without its tokens; the refresh token moves to the pending revocations."""
    if not secret.refresh_token and secret.access_token is None and client_id is None:
        return secret
    pending = list(secret.pending_revocations)
    if secret.refresh_token and secret.data_centre:
        pending.append(PendingRevocation(refresh_token=secret.refresh_token, data_centre=secret.data_centre))
    changes: dict[str, Any] = {
        "refresh_token": None,
        "access_token": None,
        "access_token_expires_at": None,
        "api_domain": None,
        "data_centre": None,
        "pending_revocations": pending,
    }
    if client_id is not None:
        changes["client_id"] = client_id
    return secret.model_copy(update=changes)


def restore_secret(services: Services, subscription_id: str, secret: SubscriptionSecret) -> None:
    """Undo a secret write whose companion item write failed, so the two keep telling the same story."""
    try:
        services.secrets.put(subscription_id, secret)
    except Exception:
        logger.exception("could not restore the secret", extra={"subscription_id": subscription_id})


def settle_pending(
    services: Services, subscription_id: str, *, recorded: SubscriptionSecret
) -> SubscriptionSecret:
    """Revoke what the secret records as pending, under the lease and as stored now, so two callers at
    once (two revokes, a revoke and a client-id change) revoke each token once. While another holds the
    lease, ``recorded`` (the secret as this caller wrote it) stands: the refresher revokes it later."""
    try:
        with lease.held(services, subscription_id, purpose="revoke", wait_seconds=5.0) as held:
            secret = services.secrets.require(subscription_id)
            return settle_revocations(services, held.subscription, secret)
    except Busy:
        return recorded


def settle_revocations(
    services: Services, subscription: Subscription, secret: SubscriptionSecret
) -> SubscriptionSecret:
    """Revoke the tokens awaiting revocation; those Zoho did not confirm stay recorded for a later try."""
    remaining = []
    for pending in secret.pending_revocations:
        try:
            revoke_at_zoho(services, subscription, pending.refresh_token, pending.data_centre)
        except ZohoError as error:
            logger.warning(
                "refresh token revocation postponed",
                extra={"subscription_id": subscription.subscription_id, "error": error.zoho_code},
            )
            remaining.append(pending)
    if len(remaining) == len(secret.pending_revocations):
        return secret
    settled = secret.model_copy(update={"pending_revocations": remaining})
    try:
        services.secrets.put(subscription.subscription_id, settled)
    except Exception:
        # Still recorded as pending: revoking an already revoked token again is harmless.
        logger.warning(
            "could not record the revocation", extra={"subscription_id": subscription.subscription_id}
        )
        return secret
    return settled


def retry_at(services: Services, subscription: Subscription) -> int:
    delay = schedule.backoff_seconds(
        subscription.consecutive_failures + 1,
        base=services.settings.retry_base_seconds,
        cap=services.settings.retry_cap_seconds,
    )
    return int(services.clock.time()) + delay


def revoke_at_zoho(
    services: Services, subscription: Subscription, refresh_token: str, data_centre: str
) -> None:
    """Transient failures propagate (nothing changes); a token Zoho no longer knows is already gone."""
    version = services.catalogue.get(subscription.integration).get_version(subscription.version)
    try:
        services.zoho.revoke(
            revoke_url=services.accounts_servers.url_for(data_centre) + version.revoke_path,
            refresh_token=refresh_token,
        )
    except ZohoError as error:
        if error.transient:
            raise
        logger.info(
            "Zoho did not know the refresh token", extra={"subscription_id": subscription.subscription_id}
        )

"""A token Zoho refused (INVALID_OAUTHTOKEN: revoked, or one of too many) replaced once, under the
subscription's lease, so a burst of refused calls makes one refresh, not one each.

Zoho mints at most about 10 access tokens per refresh token in 10 minutes: a forced refresh is made
only when the last refresh (or connection) is at least a minute old, which keeps the broker's own
refreshes within that limit however many calls are refused.
"""

from __future__ import annotations

from datetime import timedelta

from aws_lambda_powertools import Logger

from zoho_broker.clock import utc_now
from zoho_broker.errors import Busy
from zoho_broker.logic import lease, refresh
from zoho_broker.models import AccessToken, RefreshResult, SubscriptionSecret
from zoho_broker.services import Services

logger = Logger(child=True)

MIN_REFRESH_SPACING = timedelta(seconds=60)
LEASE_WAIT_SECONDS = 5.0


def recover_token(services: Services, subscription_id: str, *, rejected: str) -> AccessToken | None:
    """A token other than ``rejected``: one someone else stored meanwhile, or a new one from a forced
    refresh. None when there is none to be had now (refreshed too recently, or the refresh failed):
    the caller then passes Zoho's 401 on."""
    try:
        with lease.held(
            services, subscription_id, purpose="proxy-refresh", wait_seconds=LEASE_WAIT_SECONDS
        ) as held:
            secret = services.secrets.get(subscription_id)
            if _replaced(secret, rejected):
                return AccessToken.of(subscription_id, secret)
            subscription = held.subscription
            last = max(
                (moment for moment in (subscription.last_refreshed_at, subscription.connected_at) if moment),
                default=None,
            )
            if last is not None and utc_now(services.clock) - last < MIN_REFRESH_SPACING:
                logger.warning(
                    "token refused by Zoho, but refreshed under a minute ago: not refreshing again",
                    extra={"subscription_id": subscription_id},
                )
                return None
            outcome = refresh.refresh_held(
                services, held, force=True, margin=None, pacing=refresh.INTERACTIVE
            )
    except Busy:
        outcome = None  # someone else is refreshing; their token may serve
    if outcome is not None and outcome.result != RefreshResult.REFRESHED:
        logger.warning(
            "token refused by Zoho and the refresh failed",
            extra={"subscription_id": subscription_id, "result": outcome.result.value},
        )
        return None
    secret = services.secrets.get(subscription_id)
    return AccessToken.of(subscription_id, secret) if _replaced(secret, rejected) else None


def _replaced(secret: SubscriptionSecret | None, rejected: str) -> bool:
    return bool(secret and secret.access_token and secret.access_token != rejected)

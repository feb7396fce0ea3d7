"""Keeping access tokens fresh: one subscription's refresh, the scheduled sweep and token vending.
Every path that writes tokens holds the subscription's lease (letting go of tokens: logic/revocation.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from zoho_broker.clock import utc_now as clock_now
from zoho_broker.errors import (
    Busy,
    LeaseLost,
    NeedsReauthentication,
    NotConnected,
    SecretUnreadable,
    ServiceUnavailable,
    ZohoError,
)
from zoho_broker.logic import lease, revocation, schedule
from zoho_broker.logic.pacing import take_slot
from zoho_broker.models import (
    AccessToken,
    ConnectionStatus,
    RefreshOutcome,
    RefreshResult,
    Subscription,
    SubscriptionSecret,
    utc_now,
)
from zoho_broker.observability import metrics
from zoho_broker.services import Services
from zoho_broker.store import announcements
from zoho_broker.store.aws import is_unavailable

logger = Logger(child=True)

# Answers that mean the refresh token will never work again (revoked, or the client is gone).
DEFINITIVE_ERRORS = frozenset(
    {"invalid_code", "invalid_grant", "invalid_client", "invalid_client_secret", "unauthorized_client"}
)
# A consumer asking for a token gets one valid for at least this long.
VENDING_MARGIN = timedelta(minutes=5)
next_due = schedule.next_due
backoff_seconds = schedule.backoff_seconds


@dataclass(frozen=True)
class Pacing:
    """How long a refresh may spend getting its secret write done (budget waits and throttled retries).

    Scheduled refreshes can wait longer than a person at the admin API; both stay well inside the
    60 s lease and their function's timeout together with Zoho's 10 s.
    """

    write_wait_seconds: float
    first_retry_seconds: float = 0.25


SCHEDULED = Pacing(write_wait_seconds=20.0)
INTERACTIVE = Pacing(write_wait_seconds=4.0)


def announce(
    services: Services,
    detail_type: str,
    subscription: Subscription,
    *,
    reason: str | None = None,
    failing_days: int = 0,
    **extra: Any,
) -> None:
    """Metric, log line and EventBridge event; a refused event never undoes or fails the work announced."""
    detail: dict[str, Any] = {
        "stage": services.settings.stage,
        "subscription_id": subscription.subscription_id,
        "name": subscription.name,
        "integration": subscription.integration,
        "data_centre": subscription.data_centre,
        "reason": reason,
        "failing_days": failing_days,
        "occurred_at": utc_now().isoformat(),
        **extra,
    }
    # Metric and log first: if EventBridge refuses the event, the alarm still fires.
    metrics.add_metric(name=detail_type, unit=MetricUnit.Count, value=1)
    logger.warning(detail_type, extra={"announcement": detail})
    try:
        services.announcer.announce(detail_type, detail)
    except Exception:
        metrics.add_metric(name="AnnouncementFailed", unit=MetricUnit.Count, value=1)
        logger.exception("EventBridge did not take the event", extra={"detail_type": detail_type})


def announce_if_recovered(services: Services, subscription: Subscription, previous: ConnectionStatus) -> None:
    if previous == ConnectionStatus.NEEDS_REAUTHENTICATION:
        announce(services, announcements.RECOVERED, subscription)


def refresh(
    services: Services,
    subscription_id: str,
    *,
    force: bool = False,
    margin: timedelta | None = None,
    wait_seconds: float = 0.0,
    pacing: Pacing = SCHEDULED,
) -> RefreshOutcome:
    """Refresh one subscription's access token unless it is still fresh; never loses a refresh token.

    Without ``margin`` the subscription's schedule decides (its phase point has come); with one, a
    consumer's need does (the token expires within it).
    """
    try:
        with lease.held(services, subscription_id, purpose="refresh", wait_seconds=wait_seconds) as held:
            return refresh_held(services, held, force=force, margin=margin, pacing=pacing)
    except LeaseLost:
        metrics.add_metric(name="RefreshLeaseLost", unit=MetricUnit.Count, value=1)
        logger.warning(
            "lease lost before the result was recorded; its new holder finishes",
            extra={"subscription_id": subscription_id},
        )
        return RefreshOutcome(subscription_id=subscription_id, result=RefreshResult.LEASE_LOST)
    except Busy:
        return RefreshOutcome(subscription_id=subscription_id, result=RefreshResult.BUSY)


def refresh_queued(services: Services, subscription_id: str) -> RefreshOutcome:
    """A queued refresh: only if the subscription is still due, so a re-delivered or duplicate message
    never bypasses a backoff nor refreshes what another worker just refreshed. Raises NotFound when the
    subscription is gone."""
    subscription = services.subscriptions.require(subscription_id)
    due = subscription.refresh_due_at
    if due is None or due > int(services.clock.time()):
        logger.info("queued subscription not due; skipped", extra={"subscription_id": subscription_id})
        return RefreshOutcome(subscription_id=subscription_id, result=RefreshResult.NOT_DUE)
    return refresh(services, subscription_id)


def _still_fresh(
    services: Services, subscription_id: str, expires_at: datetime, now: datetime, margin: timedelta | None
) -> bool:
    if margin is not None:
        return expires_at > now + margin
    margin_seconds = services.settings.refresh_margin_seconds
    return expires_at > now + timedelta(seconds=margin_seconds) and not schedule.is_due(
        expires_at, now, margin_seconds, subscription_id=subscription_id
    )


def refresh_held(
    services: Services, held: lease.Lease, *, force: bool, margin: timedelta | None, pacing: Pacing
) -> RefreshOutcome:
    subscription = held.subscription
    sid = subscription.subscription_id
    try:
        secret = services.secrets.get(sid)
    except SecretUnreadable as error:
        return _record_failure(services, held, error.code, definitive=True)
    if secret is not None:
        secret = revocation.settle_revocations(services, subscription, secret)
    if secret is None or not secret.refresh_token or subscription.data_centre is None:
        # Nothing to refresh; come back only while tokens the broker let go of await revocation.
        retry = revocation.retry_at(services, subscription) if secret and secret.pending_revocations else None
        services.subscriptions.schedule(sid, refresh_due_at=retry, lease_owner=held.owner)
        held.released = True
        return RefreshOutcome(subscription_id=sid, result=RefreshResult.SKIPPED, error="not connected")
    if subscription.status == ConnectionStatus.NEEDS_REAUTHENTICATION and not force:
        return RefreshOutcome(
            subscription_id=sid, result=RefreshResult.SKIPPED, error="needs re-authentication"
        )
    now = clock_now(services.clock)
    expires_at = secret.access_token_expires_at
    # Re-read under the lease: if someone refreshed meanwhile, their token serves.
    if not force and expires_at is not None and _still_fresh(services, sid, expires_at, now, margin):
        # Leave the index due when the token really is, not at a retry time that has passed.
        due = revocation.retry_at(services, subscription) if secret.pending_revocations else None
        margin_seconds = services.settings.refresh_margin_seconds
        services.subscriptions.schedule(
            sid,
            refresh_due_at=due or next_due(expires_at, now, margin_seconds, subscription_id=sid),
            lease_owner=held.owner,
        )
        held.released = True
        return RefreshOutcome(
            subscription_id=sid, result=RefreshResult.ALREADY_FRESH, access_token_expires_at=expires_at
        )

    version = services.catalogue.get(subscription.integration).get_version(subscription.version)
    try:
        tokens = services.zoho.refresh(
            token_url=services.accounts_servers.url_for(subscription.data_centre) + version.token_path,
            client_id=secret.client_id,
            client_secret=secret.client_secret_for(subscription.data_centre),
            refresh_token=secret.refresh_token,
        )
    except ZohoError as error:
        return _record_failure(
            services, held, error.zoho_code, definitive=error.zoho_code in DEFINITIVE_ERRORS
        )

    # Counted from before the call: Zoho's hour started while we waited, never earlier.
    new_expiry = now + timedelta(seconds=tokens.expires_in)
    updated = secret.model_copy(
        update={
            "access_token": tokens.access_token,
            "access_token_expires_at": new_expiry,
            # Zoho's refresh answer has no refresh_token and may lack api_domain: keep ours.
            "refresh_token": tokens.refresh_token or secret.refresh_token,
            "api_domain": tokens.api_domain or secret.api_domain,
            "token_type": tokens.token_type,
        }
    )
    try:
        held_back = _write_paced(services, sid, updated, pacing)
    except Exception:
        logger.exception("secret write failed; the previous tokens stay", extra={"subscription_id": sid})
        return _record_failure(services, held, "secret_write_failed", definitive=False)
    if held_back is not None:
        return _record_deferral(services, held, held_back)

    previous = _record_result(
        services,
        lambda: services.subscriptions.record_refresh(
            sid,
            api_domain=updated.api_domain,
            access_token_expires_at=new_expiry,
            refreshed_at=now,
            refresh_due_at=(
                revocation.retry_at(services, subscription)
                if updated.pending_revocations
                else next_due(new_expiry, now, services.settings.refresh_margin_seconds, subscription_id=sid)
            ),
            lease_owner=held.owner,
        ),
    )
    held.released = True
    metrics.add_metric(name="RefreshSucceeded", unit=MetricUnit.Count, value=1)
    announce_if_recovered(services, subscription, previous)
    logger.info("access token refreshed", extra={"subscription_id": sid})
    return RefreshOutcome(
        subscription_id=sid, result=RefreshResult.REFRESHED, access_token_expires_at=new_expiry
    )


# How often the result write (a DynamoDB update after the secret holds the new token) is retried: left
# unrecorded, the index would call the subscription due at every sweep until a visit records it.
RESULT_WRITE_ATTEMPTS = 3


def _record_result(services: Services, write: Any) -> ConnectionStatus:
    """Run the result write, retrying passing failures (the secret already holds the new token)."""
    delay = 0.5
    for attempt in range(1, RESULT_WRITE_ATTEMPTS + 1):
        try:
            status: ConnectionStatus = write()
        except Exception as error:
            if attempt == RESULT_WRITE_ATTEMPTS or not is_unavailable(error):
                raise
            logger.warning("result write failed; retrying", extra={"attempt": attempt})
            services.clock.sleep(delay)
            delay *= 2
        else:
            return status
    raise AssertionError("unreachable")


def _write_paced(
    services: Services, subscription_id: str, secret: SubscriptionSecret, pacing: Pacing
) -> str | None:
    """Write a minted token under the write budget; a throttled write is retried, paced, until the
    pacing's wait runs out. None when written, else why it was held back (the token is then lost,
    the previous one stays valid). Errors other than throttling and timeouts raise."""
    clock = services.clock
    deadline = clock.time() + pacing.write_wait_seconds
    delay = pacing.first_retry_seconds
    per_second = services.settings.secret_writes_per_second
    while True:
        try:
            slot = take_slot(services.write_budget, clock, per_second=per_second, deadline=deadline)
        except ServiceUnavailable:
            # The budget's table is failing: write anyway. Secrets Manager's own throttling, answered
            # below, still protects the quota; a refresh must not stop for a pacing aid.
            logger.warning(
                "write budget unavailable; writing unpaced", extra={"subscription_id": subscription_id}
            )
            slot = True
        if not slot:
            return "write_budget_spent"
        if services.secrets.try_put(subscription_id, secret):
            return None
        metrics.add_metric(name="SecretWriteThrottled", unit=MetricUnit.Count, value=1)
        if clock.time() + delay > deadline:
            return "secret_write_throttled"
        clock.sleep(delay)
        delay *= 2


def _epoch(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def _record_deferral(services: Services, held: lease.Lease, reason: str) -> RefreshOutcome:
    """The write was held back by the budget or by throttling: come back soon, with jitter, without
    counting a failing day. Repeated deferrals back off like failures do."""
    subscription = held.subscription
    sid = subscription.subscription_id
    failures = subscription.consecutive_failures + 1
    delay = backoff_seconds(
        failures, base=services.settings.retry_base_seconds, cap=services.settings.retry_cap_seconds
    )
    retry_at = schedule.retry_due(
        int(services.clock.time()),
        delay,
        _epoch(subscription.access_token_expires_at),
        base=services.settings.retry_base_seconds,
    )
    services.subscriptions.record_deferral(
        sid, error=reason, refresh_due_at=retry_at, consecutive_failures=failures, lease_owner=held.owner
    )
    held.released = True
    metrics.add_metric(name="RefreshDeferred", unit=MetricUnit.Count, value=1)
    logger.warning("secret write held back; will retry", extra={"subscription_id": sid, "reason": reason})
    return RefreshOutcome(
        subscription_id=sid,
        result=RefreshResult.DEFERRED,
        error=reason,
        next_attempt_at=datetime.fromtimestamp(retry_at, UTC),
    )


def _record_failure(services: Services, held: lease.Lease, code: str, *, definitive: bool) -> RefreshOutcome:
    """Back off on transient failures, counting failing days; give up at once on a definitive answer."""
    subscription = held.subscription
    sid = subscription.subscription_id
    now = clock_now(services.clock)
    today = now.date().isoformat()
    failing_days = subscription.failing_days + (0 if subscription.last_failure_day == today else 1)
    metrics.add_metric(name="RefreshFailed", unit=MetricUnit.Count, value=1)
    if definitive or failing_days >= services.settings.max_failing_days:
        previous = services.subscriptions.record_needs_reauthentication(
            sid, error=code, lease_owner=held.owner
        )
        held.released = True
        if previous != ConnectionStatus.NEEDS_REAUTHENTICATION:
            announce(
                services,
                announcements.NEEDS_REAUTHENTICATION,
                subscription,
                reason=code,
                failing_days=failing_days,
            )
        return RefreshOutcome(subscription_id=sid, result=RefreshResult.NEEDS_REAUTHENTICATION, error=code)
    failures = subscription.consecutive_failures + 1
    delay = backoff_seconds(
        failures, base=services.settings.retry_base_seconds, cap=services.settings.retry_cap_seconds
    )
    retry_at = datetime.fromtimestamp(
        schedule.retry_due(
            int(now.timestamp()),
            delay,
            _epoch(subscription.access_token_expires_at),
            base=services.settings.retry_base_seconds,
        ),
        UTC,
    )
    if subscription.access_token_expires_at and subscription.access_token_expires_at > retry_at:
        # A forced refresh failed on a token that is still good: come back when it is really due.
        margin = services.settings.refresh_margin_seconds
        retry_at = max(
            retry_at,
            datetime.fromtimestamp(
                next_due(subscription.access_token_expires_at, now, margin, subscription_id=sid), UTC
            ),
        )
    services.subscriptions.record_failure(
        sid,
        error=code,
        refresh_due_at=int(retry_at.timestamp()),
        consecutive_failures=failures,
        failing_days=failing_days,
        failure_day=today,
        lease_owner=held.owner,
    )
    held.released = True
    logger.warning(
        "refresh failed; will retry", extra={"subscription_id": sid, "error": code, "retry_in": delay}
    )
    return RefreshOutcome(
        subscription_id=sid, result=RefreshResult.FAILED, error=code, next_attempt_at=retry_at
    )


@dataclass(frozen=True)
class SweepSummary:
    due: int
    refreshed_inline: int
    queued: int


def sweep(services: Services) -> SweepSummary:
    """The scheduled run: find what is due by the index; refresh a few here, queue the rest."""
    now = clock_now(services.clock)
    due = list(services.subscriptions.due_for_refresh(due_before=int(now.timestamp())))
    inline_limit = services.settings.refresh_inline_limit
    if len(due) <= inline_limit:
        refreshed = 0
        for subscription_id in due:
            # One broken subscription must not starve the others (it would sort first every run).
            try:
                if refresh(services, subscription_id).result == RefreshResult.REFRESHED:
                    refreshed += 1
            except Exception:
                logger.exception("inline refresh failed", extra={"subscription_id": subscription_id})
        summary = SweepSummary(due=len(due), refreshed_inline=refreshed, queued=0)
    else:
        summary = SweepSummary(due=len(due), refreshed_inline=0, queued=services.refresh_queue.send(due))
    metrics.add_metric(name="RefreshesDue", unit=MetricUnit.Count, value=len(due))
    logger.info("refresh sweep", extra={"due": summary.due, "queued": summary.queued})
    return summary


def vend_token(services: Services, subscription_id: str) -> AccessToken:
    """A token valid for at least five minutes, refreshed first (under the lease) when needed."""
    subscription = services.subscriptions.require(subscription_id)
    require_connected(subscription)
    secret = services.secrets.get(subscription_id)
    if not _fresh(secret, VENDING_MARGIN):
        outcome = refresh(
            services, subscription_id, margin=VENDING_MARGIN, wait_seconds=5.0, pacing=INTERACTIVE
        )
        if outcome.result == RefreshResult.NEEDS_REAUTHENTICATION:
            raise NeedsReauthentication(
                "Zoho refused the refresh token: the subscription needs re-authentication."
            )
        secret = services.secrets.get(subscription_id)
        if not _fresh(secret, VENDING_MARGIN):
            reason = outcome.error or outcome.result.value
            raise ZohoError(
                f"No fresh access token could be obtained ({reason}); try again in a minute.",
                zoho_code=reason,
                transient=True,
            )
    return AccessToken.of(subscription_id, secret)


def _fresh(secret: SubscriptionSecret | None, margin: timedelta) -> bool:
    return bool(
        secret
        and secret.access_token
        and secret.access_token_expires_at
        and secret.access_token_expires_at > utc_now() + margin
    )


def require_connected(subscription: Subscription) -> None:
    if subscription.status == ConnectionStatus.NEEDS_REAUTHENTICATION:
        raise NeedsReauthentication("The subscription needs re-authentication: send a new connect link.")
    if subscription.status != ConnectionStatus.CONNECTED:
        raise NotConnected("The subscription is not connected yet: send a connect link.")


def refresh_now(services: Services, subscription_id: str) -> RefreshOutcome:
    """An operator's forced refresh (also the way to test a subscription flagged for re-authentication)."""
    services.subscriptions.require(subscription_id)
    outcome = refresh(services, subscription_id, force=True, wait_seconds=5.0, pacing=INTERACTIVE)
    if outcome.result in (RefreshResult.BUSY, RefreshResult.LEASE_LOST):
        raise Busy("Another refresh of this subscription is under way; try again in a few seconds.")
    if outcome.result == RefreshResult.DEFERRED:
        raise Busy("Secrets Manager is busy with other writes; nothing changed, try again in a few seconds.")
    if outcome.result == RefreshResult.SKIPPED:
        raise NotConnected("The subscription has no refresh token: send a connect link.")
    if outcome.result == RefreshResult.NEEDS_REAUTHENTICATION:
        raise NeedsReauthentication(
            f"Zoho refused the refresh token ({outcome.error}): the subscription needs re-authentication."
        )
    if outcome.result == RefreshResult.FAILED:
        reason = outcome.error or "unknown"
        raise ZohoError(
            f"The refresh failed ({reason}); the refresher retries it, or try again in a minute.",
            zoho_code=reason,
            transient=True,
        )
    return outcome

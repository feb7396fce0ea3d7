"""Subscriptions: create, read, list, update, delete, and connect links for them."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger

from zoho_broker import state
from zoho_broker.catalogue import (
    REDIRECT_URL_FIELD,
    AuthorizationType,
    IntegrationVersion,
    StoredIntegration,
)
from zoho_broker.errors import Conflict, InvalidInput, NotFound
from zoho_broker.logic import lease, revocation
from zoho_broker.models import (
    ConnectionStatus,
    ConnectLink,
    ConnectLinkRecord,
    Subscription,
    SubscriptionCreate,
    SubscriptionList,
    SubscriptionSecret,
    SubscriptionUpdate,
    SubscriptionView,
    utc_now,
)
from zoho_broker.services import Services

logger = Logger(child=True)

LINK_TOKEN_BYTES = 32
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _integration(services: Services, integration_id: str) -> StoredIntegration:
    try:
        return services.catalogue.current(integration_id)
    except NotFound as error:
        raise InvalidInput(error.message) from error


def _usable_version(integration: StoredIntegration, version: str | None) -> IntegrationVersion:
    """The version a subscription may start using: named (or the latest), and not being deleted."""
    chosen = integration.get_version(version) if version else integration.latest
    if chosen.version in integration.retiring:
        raise Conflict(f"Version {chosen.version!r} of {integration.id!r} is being deleted: choose another.")
    return chosen


def _check_redirect_url(services: Services, value: str) -> None:
    """Zoho sends the person and the code there: an absolute https URL (http only on loopback, locally)."""
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    loopback = host in LOOPBACK_HOSTS and not services.settings.cookie_secure
    if (
        parts is None
        or not host
        or parts.username
        or parts.password
        or parts.fragment
        or not (parts.scheme == "https" or (parts.scheme == "http" and loopback))
    ):
        only_https = "" if services.settings.cookie_secure else " (http only on 127.0.0.1 or localhost)"
        raise InvalidInput(f"{REDIRECT_URL_FIELD} must be an absolute https URL{only_https}.")


def _check_custom_fields(services: Services, version: IntegrationVersion, values: dict[str, str]) -> None:
    known = {field.name for field in version.custom_fields}
    unknown = sorted(set(values) - known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise InvalidInput(f"Unknown custom field(s) {', '.join(unknown)}; this version knows {allowed}.")
    missing = [
        f.name for f in version.custom_fields if f.required and not values.get(f.name) and not f.default
    ]
    if missing:
        raise InvalidInput(f"Missing required custom field(s): {', '.join(missing)}.")
    if values.get(REDIRECT_URL_FIELD):
        _check_redirect_url(services, values[REDIRECT_URL_FIELD])


def _check_data_centres(services: Services, secrets_by_dc: dict[str, Any]) -> None:
    known = services.accounts_servers.by_data_centre
    unknown = sorted(set(secrets_by_dc) - set(known))
    if unknown:
        raise InvalidInput(f"Unknown data centre(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.")


def _view(
    services: Services, subscription: Subscription, secret: SubscriptionSecret | None
) -> SubscriptionView:
    name = services.secrets.name_for(subscription.subscription_id)
    return SubscriptionView.build(subscription, secret_name=name, secret=secret)


def create(services: Services, body: SubscriptionCreate) -> SubscriptionView:
    integration = _integration(services, body.integration)
    version = _usable_version(integration, body.version)
    _check_custom_fields(services, version, body.custom_fields)
    _check_data_centres(services, body.client_secrets_by_data_centre)
    now = utc_now()
    subscription = Subscription(
        subscription_id="sub_" + secrets.token_hex(8),
        name=body.name,
        integration=integration.id,
        version=version.version,
        client_id=body.client_id,
        api_url=body.api_url or version.default_api_url,
        throttling=body.throttling or version.default_throttling,
        custom_fields=body.custom_fields,
        created_at=now,
        updated_at=now,
    )
    secret = SubscriptionSecret(
        client_id=body.client_id,
        client_secret=body.client_secret.get_secret_value(),
        client_secrets_by_data_centre={
            dc: value.get_secret_value() for dc, value in body.client_secrets_by_data_centre.items()
        },
    )
    # The name check lives in DynamoDB's transaction, so test it first and only then create the secret.
    services.subscriptions.create(
        subscription,
        integration_check=services.catalogue.store.unchanged_check(integration.id, integration.revision),
    )
    try:
        services.secrets.create(subscription.subscription_id, secret)
    except Exception:
        services.subscriptions.delete(subscription)
        raise
    logger.info("subscription created", extra={"subscription_id": subscription.subscription_id})
    return _view(services, subscription, secret)


def get(services: Services, subscription_id: str) -> SubscriptionView:
    subscription = services.subscriptions.require(subscription_id)
    return _view(services, subscription, services.secrets.get(subscription_id))


def list_page(services: Services, *, limit: int, cursor: str | None) -> SubscriptionList:
    found, next_cursor = services.subscriptions.list_page(limit=limit, cursor=cursor)
    return SubscriptionList(subscriptions=[_view(services, s, None) for s in found], next_cursor=next_cursor)


def update(services: Services, subscription_id: str, body: SubscriptionUpdate) -> SubscriptionView:
    current = services.subscriptions.require(subscription_id)
    integration = _integration(services, current.integration)
    moving = body.version is not None and body.version != current.version
    version = (
        _usable_version(integration, body.version) if moving else integration.get_version(current.version)
    )
    changes: dict[str, Any] = body.model_dump(
        exclude_unset=True, exclude={"client_secret", "client_secrets_by_data_centre"}
    )
    clear_organization = "organization" in body.model_fields_set
    if body.throttling is not None:
        changes["throttling"] = body.throttling
    if moving and current.status != ConnectionStatus.NOT_CONNECTED:
        # The tokens were granted for the old version's scopes: they keep working, but a person must
        # consent again for the new ones.
        previous = integration.find_version(current.version)
        if previous is None or previous.scopes() != version.scopes():
            changes["reconnect_required"] = True
    updated = current.model_copy(update={**changes, "updated_at": utc_now()})
    _check_custom_fields(services, version, updated.custom_fields)
    if body.client_secrets_by_data_centre is not None:
        _check_data_centres(services, body.client_secrets_by_data_centre)

    # Under the lease: a refresh running now would otherwise write back the secret as it was.
    with lease.held(services, subscription_id, purpose="update", wait_seconds=5.0):
        secret = services.secrets.require(subscription_id)
        client_changed = body.client_id is not None and body.client_id != current.client_id
        new_secret = _apply_secret_changes(secret, body, client_changed=client_changed)
        # The secret first; if the item's write fails after it, the secret is put back as it was.
        if new_secret is not secret:
            services.secrets.put(subscription_id, new_secret)
        try:
            services.subscriptions.update_settings(
                updated,
                previous_name=current.name,
                disconnect=client_changed,
                revoke_due_at=int(utc_now().timestamp()) if new_secret.pending_revocations else None,
                integration_check=(
                    services.catalogue.store.unchanged_check(integration.id, integration.revision)
                    if moving
                    else None
                ),
                clear_organization=clear_organization,
            )
        except Exception:
            if new_secret is not secret:
                revocation.restore_secret(services, subscription_id, secret)
            raise
    if client_changed and new_secret.pending_revocations:
        # The old client's refresh token: revoked now, or by the refresher (the subscription is due).
        new_secret = revocation.settle_pending(services, subscription_id, recorded=new_secret)
    if clear_organization:
        logger.info("organization binding cleared", extra={"subscription_id": subscription_id})
    logger.info("subscription updated", extra={"subscription_id": subscription_id})
    return _view(services, services.subscriptions.require(subscription_id), new_secret)


def _apply_secret_changes(
    secret: SubscriptionSecret, body: SubscriptionUpdate, *, client_changed: bool
) -> SubscriptionSecret:
    # Tokens belong to the old client: the subscription must be connected again.
    updated = revocation.release_tokens(secret, client_id=body.client_id) if client_changed else secret
    changes: dict[str, Any] = {}
    if body.client_secret is not None:
        changes["client_secret"] = body.client_secret.get_secret_value()
    if body.client_secrets_by_data_centre is not None:
        changes["client_secrets_by_data_centre"] = {
            dc: value.get_secret_value() for dc, value in body.client_secrets_by_data_centre.items()
        }
    return updated.model_copy(update=changes) if changes else updated


def delete(services: Services, subscription_id: str) -> None:
    """Disconnect (revoking the refresh token at Zoho), then delete the secret, then the items.

    Each step can be repeated: a failure answers 503 and the same DELETE finishes the job.
    """
    subscription = services.subscriptions.require(subscription_id)
    if services.secrets.get(subscription_id) is not None:
        revocation.disconnect(services, subscription_id, must_revoke=True)
    services.secrets.delete(subscription_id)
    services.subscriptions.delete(subscription)
    logger.info("subscription deleted", extra={"subscription_id": subscription_id})


def create_connect_link(services: Services, subscription_id: str, *, base_url: str) -> ConnectLink:
    subscription = services.subscriptions.require(subscription_id)
    version = services.catalogue.get(subscription.integration).get_version(subscription.version)
    if version.authorization_type == AuthorizationType.SELF_CLIENT:
        raise Conflict(
            f"Version {version.version!r} connects with Zoho's Self Client: submit the grant code the account "
            f"owner generated with POST /admin/subscriptions/{subscription_id}/grant-code."
        )
    token = secrets.token_urlsafe(LINK_TOKEN_BYTES)
    expires_at = utc_now() + timedelta(seconds=services.settings.connect_link_ttl_seconds)
    services.flows.put_connect_link(
        state.hash_secret_token(token),
        ConnectLinkRecord(
            subscription_id=subscription.subscription_id,
            expires_at=int(expires_at.timestamp()),
            generation=subscription.connect_generation,
        ),
    )
    logger.info("connect link created", extra={"subscription_id": subscription_id})
    return ConnectLink(
        url=f"{base_url}/connect/{token}", expires_at=expires_at, subscription_id=subscription.subscription_id
    )

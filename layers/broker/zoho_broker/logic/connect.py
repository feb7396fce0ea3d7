"""The consent flow: open a connect link (start), then finish at the callback (exchange and store)."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import timedelta

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from zoho_broker import state
from zoho_broker.catalogue import REDIRECT_URL_FIELD, AuthorizationType, IntegrationVersion
from zoho_broker.data_centres import label
from zoho_broker.errors import (
    Busy,
    Conflict,
    ConnectLinkInvalid,
    InvalidInput,
    NotFound,
    OrganizationUnverified,
    RetryWithLink,
    RetryWithNewGrantCode,
    ServiceUnavailable,
    StateRejected,
    ZohoError,
)
from zoho_broker.logic import lease, organizations, refresh, revocation
from zoho_broker.masking import mask
from zoho_broker.models import (
    ConnectionStatus,
    ConnectLinkRecord,
    PendingRevocation,
    StateRecord,
    Subscription,
    SubscriptionSecret,
    utc_now,
)
from zoho_broker.oauth_url import render_authorization_url
from zoho_broker.observability import metrics
from zoho_broker.services import Services
from zoho_broker.store import announcements
from zoho_broker.store.aws import is_unavailable

logger = Logger(child=True)

LINK_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
CALLBACK_PATH = "/oauth/callback"
# The callback function's timeout (template.yaml) covers this wait, Zoho's timeout twice (exchange,
# and revoking a token that could not be stored) and the AWS writes.
LEASE_WAIT_SECONDS = 3.0


@dataclass(frozen=True)
class StartOutcome:
    authorization_url: str
    browser_binding: str
    subscription_id: str


@dataclass(frozen=True)
class CallbackParams:
    state: str
    code: str | None = None
    error: str | None = None
    location: str | None = None
    accounts_server: str | None = None


@dataclass(frozen=True)
class ConnectOutcome:
    subscription_id: str
    integration_name: str
    data_centre: str | None
    denied: bool = False
    subscription_name: str = ""
    organization_name: str | None = None

    @property
    def data_centre_label(self) -> str:
        return label(self.data_centre) if self.data_centre else ""


def redirect_uri_for(subscription: Subscription, version: IntegrationVersion, base_url: str) -> str:
    """The subscription's RedirectUrl, else the version's default, else the broker's own callback."""
    field = version.custom_field(REDIRECT_URL_FIELD)
    configured = subscription.custom_fields.get(REDIRECT_URL_FIELD) or (field.default if field else None)
    return configured or base_url + CALLBACK_PATH


@dataclass(frozen=True)
class LinkPreview:
    subscription_name: str
    integration_name: str


def _usable(record: ConnectLinkRecord | None, services: Services) -> Subscription:
    if record is None or record.expires_at <= int(utc_now().timestamp()):
        raise ConnectLinkInvalid("This connect link has expired or was already used.")
    subscription = services.subscriptions.get(record.subscription_id)
    if subscription is None:
        raise ConnectLinkInvalid("The subscription of this connect link no longer exists.")
    if subscription.connect_generation != record.generation:
        raise ConnectLinkInvalid(
            "This connect link was replaced: the subscription was connected or disconnected since."
        )
    return subscription


def _link(services: Services, link_token: str) -> tuple[str, ConnectLinkRecord, Subscription]:
    if not LINK_TOKEN.match(link_token):
        raise ConnectLinkInvalid("This connect link is not valid.")
    link_hash = state.hash_secret_token(link_token)
    record = services.flows.get_connect_link(link_hash)
    subscription = _usable(record, services)
    assert record is not None
    return link_hash, record, subscription


def preview(services: Services, *, link_token: str) -> LinkPreview:
    """What the link's landing page shows; reading it uses nothing up."""
    _, _, subscription = _link(services, link_token)
    integration = services.catalogue.get(subscription.integration)
    return LinkPreview(subscription_name=subscription.name, integration_name=integration.name)


def start(services: Services, *, link_token: str, browser_binding: str | None, base_url: str) -> StartOutcome:
    """The person pressed Continue: use up the link, mint a state and send them to Zoho.

    Everything that can fail is done before the link is used up, and the link and the state change in
    one transaction: a failure leaves the link as it was.
    """
    link_hash, link, subscription = _link(services, link_token)
    version = services.catalogue.get(subscription.integration).get_version(subscription.version)
    if version.authorization_type == AuthorizationType.SELF_CLIENT or not version.oauth_url_template:
        raise ConnectLinkInvalid(
            "This subscription now connects with a Self Client grant code, not through a connect link."
        )
    redirect_uri = redirect_uri_for(subscription, version, base_url)
    binding = browser_binding if state.is_browser_binding(browser_binding) else state.new_browser_binding()
    signed = state.mint(services.signing_keys.get(), subscription.subscription_id)
    url = render_authorization_url(
        version,
        client_id=subscription.client_id,
        state=signed.value,
        custom_fields={**subscription.custom_fields, REDIRECT_URL_FIELD: redirect_uri},
    )
    expires_at = utc_now() + timedelta(seconds=services.settings.state_ttl_seconds)
    record = StateRecord(
        subscription_id=subscription.subscription_id,
        binding_hash=state.hash_secret_token(binding),
        redirect_uri=redirect_uri,
        expires_at=int(expires_at.timestamp()),
        generation=link.generation,
        link_hash=link_hash,
        link_expires_at=link.expires_at,
        token_path=version.token_path,
    )
    if not services.flows.start_consent(link_hash, signed.nonce, record):
        raise ConnectLinkInvalid("This connect link has expired or was already used.")
    logger.info("consent started", extra={"subscription_id": subscription.subscription_id})
    return StartOutcome(
        authorization_url=services.accounts_servers.rewrite_zoho_origin(url),
        browser_binding=binding,
        subscription_id=subscription.subscription_id,
    )


def _passing(error: Exception) -> bool:
    """A failure worth retrying: Zoho or AWS slow, failing or busy."""
    if isinstance(error, ZohoError):
        return error.transient
    return isinstance(error, Busy | ServiceUnavailable) or is_unavailable(error)


def complete(services: Services, params: CallbackParams, *, browser_binding: str | None) -> ConnectOutcome:
    signed = state.verify(services.signing_keys.get(), params.state)
    record = services.flows.consume_state(signed.nonce)
    if record is None:
        raise StateRejected("This sign-in was already completed or has expired.")
    if record.subscription_id != signed.subscription_id:
        raise StateRejected("This sign-in belongs to another subscription's connect link.")
    if record.expires_at <= int(utc_now().timestamp()):
        raise StateRejected("This sign-in has expired.")
    if not state.is_browser_binding(browser_binding) or not _same_hash(browser_binding, record.binding_hash):
        raise StateRejected("This sign-in was started in another browser.")
    try:
        return _finish_consent(services, record, params)
    except Exception as error:
        if _passing(error) and record.link_hash and record.link_expires_at:
            # Nothing was connected: the person may open the same connect link again.
            services.flows.restore_connect_link(
                record.link_hash,
                ConnectLinkRecord(
                    subscription_id=record.subscription_id,
                    expires_at=record.link_expires_at,
                    generation=record.generation,
                ),
            )
            raise RetryWithLink(error) from error
        raise


def _finish_consent(services: Services, record: StateRecord, params: CallbackParams) -> ConnectOutcome:
    subscription = services.subscriptions.get(record.subscription_id)
    if subscription is None:
        raise NotFound("The subscription was deleted while it was being connected.")
    integration = services.catalogue.get(subscription.integration)
    log = {"subscription_id": subscription.subscription_id}
    if params.error:
        if params.error == "access_denied":
            logger.info("consent denied", extra=log)
            return ConnectOutcome(subscription.subscription_id, integration.name, None, denied=True)
        raise ZohoError("Zoho reported an error instead of a code.", zoho_code=params.error, transient=False)
    if not params.code:
        raise InvalidInput("The callback carries neither a code nor an error.")

    data_centre, origin = services.accounts_servers.resolve(
        location=params.location, accounts_server=params.accounts_server
    )
    version = integration.get_version(subscription.version)
    return _connect_with_code(
        services,
        subscription,
        integration.name,
        version,
        code=params.code,
        data_centre=data_centre,
        token_url=origin + (record.token_path or version.token_path),
        redirect_uri=record.redirect_uri,
        generation=record.generation,
        failure="connect",
    )


def exchange_grant_code(
    services: Services, subscription_id: str, *, code: str, data_centre: str
) -> ConnectOutcome:
    """Zoho's Self Client: the account owner generated a grant code for their own account in the API
    Console; exchange it at the data centre that issued it and connect the subscription as a consent would.

    The code is a secret: it is never logged, stored or put in a message.
    """
    subscription = services.subscriptions.require(subscription_id)
    integration = services.catalogue.get(subscription.integration)
    version = integration.get_version(subscription.version)
    if version.authorization_type != AuthorizationType.SELF_CLIENT:
        raise Conflict(
            f"Version {version.version!r} of {integration.id!r} connects through connect links, not Self Client "
            "grant codes: move the subscription to a self_client version first."
        )
    servers = services.accounts_servers.by_data_centre
    if data_centre not in servers:
        raise InvalidInput(f"Unknown data centre {data_centre!r}; known: {', '.join(sorted(servers))}.")
    try:
        return _connect_with_code(
            services,
            subscription,
            integration.name,
            version,
            code=code,
            data_centre=data_centre,
            token_url=servers[data_centre] + version.token_path,
            redirect_uri=None,
            generation=None,
            failure="grant code",
        )
    except ZohoError as error:
        if error.zoho_code == "invalid_code":
            raise ZohoError(
                f"Zoho rejected the grant code: it expired, was already used, or was not generated in the "
                f"{label(data_centre)} data centre. Generate a new one in the Self Client of the account's "
                "data centre and submit it with that data centre.",
                zoho_code="invalid_code",
                transient=False,
            ) from error
        if error.transient:
            raise RetryWithNewGrantCode(error) from error
        raise
    except Exception as error:
        if _passing(error):
            raise RetryWithNewGrantCode(error) from error
        raise


def _connect_with_code(
    services: Services,
    subscription: Subscription,
    integration_name: str,
    version: IntegrationVersion,
    *,
    code: str,
    data_centre: str,
    token_url: str,
    redirect_uri: str | None,
    generation: int | None,
    failure: str,
) -> ConnectOutcome:
    """Exchange a grant code, store the tokens and announce the connection: a consent's callback and a
    Self Client grant code alike. ``generation`` (a consent's) must still be the subscription's.

    Before the new tokens replace anything, the version's verification call names the Zoho organization:
    another one than the subscription is bound to is refused and its new refresh token revoked."""
    log = {"subscription_id": subscription.subscription_id}
    # Under the lease, so a scheduled refresh cannot overwrite the new tokens with refreshed old ones.
    with lease.held(
        services, subscription.subscription_id, purpose="connect", wait_seconds=LEASE_WAIT_SECONDS
    ) as held:
        current = held.subscription
        if generation is not None and current.connect_generation != generation:
            raise StateRejected(
                "This connect link was replaced: the subscription was connected or disconnected since."
            )
        secret = services.secrets.require(subscription.subscription_id)
        try:
            tokens = services.zoho.exchange_code(
                token_url=token_url,
                client_id=subscription.client_id,
                client_secret=secret.client_secret_for(data_centre),
                code=code,
                redirect_uri=redirect_uri,
            )
            refresh_token = tokens.refresh_token
            if refresh_token is None and secret.data_centre == data_centre:
                refresh_token = secret.refresh_token  # re-consent without prompt=consent: the old one works
            if refresh_token is None:
                raise ZohoError(
                    "Zoho issued no refresh token; the OAuth URL template needs access_type=offline.",
                    zoho_code="no_refresh_token",
                    transient=False,
                )
        except ZohoError as error:
            services.subscriptions.record_connect_failure(
                subscription.subscription_id,
                error=f"{failure} failed: {error.zoho_code}",
                lease_owner=held.owner,
            )
            held.released = True
            raise
        api_domain = tokens.api_domain or secret.api_domain
        check = organizations.verify(
            services,
            current,
            version,
            access_token=tokens.access_token,
            data_centre=data_centre,
            api_domain=api_domain,
        )
        refused = organizations.refusal(current, check)
        if refused is not None:
            fresh = tokens.refresh_token if tokens.refresh_token != secret.refresh_token else None
            reason = check.error if isinstance(refused, OrganizationUnverified) else refused.code
            _refuse(services, held, version, secret, fresh, data_centre, error=f"{failure} refused: {reason}")
            raise refused
        now = utc_now()
        expires_at = now + timedelta(seconds=tokens.expires_in)
        # The replaced refresh token is recorded for revocation in the same write; the refresher revokes
        # it at once (it is due now), so a failing revoke never holds up the person.
        pending = list(secret.pending_revocations)
        if secret.refresh_token and secret.refresh_token != refresh_token and secret.data_centre:
            pending.append(
                PendingRevocation(refresh_token=secret.refresh_token, data_centre=secret.data_centre)
            )
        connected = secret.model_copy(
            update={
                "refresh_token": refresh_token,
                "access_token": tokens.access_token,
                "access_token_expires_at": expires_at,
                "api_domain": api_domain,
                "data_centre": data_centre,
                "token_type": tokens.token_type,
                "pending_revocations": pending,
            }
        )
        fresh_token = refresh_token if refresh_token != secret.refresh_token else None
        try:
            services.secrets.put(subscription.subscription_id, connected)
        except Exception:
            _let_go(services, current, fresh_token, data_centre)
            raise
        live = current.status == ConnectionStatus.CONNECTED and current.data_centre is not None
        try:
            previous = services.subscriptions.record_connection(
                subscription.subscription_id,
                data_centre=data_centre,
                api_domain=api_domain,
                access_token_expires_at=expires_at,
                connected_at=now,
                refresh_due_at=(
                    int(now.timestamp())
                    if pending
                    else refresh.next_due(
                        expires_at,
                        now,
                        services.settings.refresh_margin_seconds,
                        subscription_id=subscription.subscription_id,
                    )
                ),
                lease_owner=held.owner,
                reconnected_from=current.data_centre if live else None,
                organization=check.organization,
                organization_check_error=check.error,
            )
        except Exception:
            revocation.restore_secret(services, subscription.subscription_id, secret)
            _let_go(services, current, fresh_token, data_centre)
            raise
        held.released = True
    if live:
        refresh.announce(
            services,
            announcements.RECONNECTED,
            current,
            previous_data_centre=current.data_centre,
            new_data_centre=data_centre,
        )
    refresh.announce_if_recovered(services, subscription, previous)
    logger.info("subscription connected", extra={**log, "data_centre": data_centre, "by": failure})
    verified = check.organization  # only an organization this consent was verified to reach is named
    return ConnectOutcome(
        subscription.subscription_id,
        integration_name,
        data_centre,
        subscription_name=subscription.name,
        organization_name=verified.name if verified else None,
    )


def _refuse(
    services: Services,
    held: lease.Lease,
    version: IntegrationVersion,
    secret: SubscriptionSecret,
    token: str | None,
    data_centre: str,
    *,
    error: str,
) -> None:
    """Another organization's consent: revoke its new refresh token and keep the connection as it is.

    A revocation Zoho does not confirm is recorded in the secret (its tokens unchanged) for the refresher,
    which comes due at once, so no live token of the other organization is left recorded nowhere.
    """
    subscription_id = held.subscription.subscription_id
    due: int | None = None
    if token is not None and not _revoked_at_zoho(services, version, token, data_centre):
        pending = [
            *secret.pending_revocations,
            PendingRevocation(refresh_token=token, data_centre=data_centre),
        ]
        services.secrets.put(subscription_id, secret.model_copy(update={"pending_revocations": pending}))
        due = int(utc_now().timestamp())
    services.subscriptions.record_connect_failure(
        subscription_id, error=error, lease_owner=held.owner, refresh_due_at=due
    )
    held.released = True
    logger.warning("consent refused", extra={"subscription_id": subscription_id, "reason": error})


def _revoked_at_zoho(services: Services, version: IntegrationVersion, token: str, data_centre: str) -> bool:
    """True once Zoho confirmed it (or no longer knows the token); False when it must be tried again.

    The version is in hand: no catalogue read that could fail comes between the exchange and this.
    """
    try:
        services.zoho.revoke(
            revoke_url=services.accounts_servers.url_for(data_centre) + version.revoke_path,
            refresh_token=token,
        )
    except ZohoError as error:
        return not error.transient
    return True


def _let_go(services: Services, subscription: Subscription, token: str | None, data_centre: str) -> None:
    """A refresh token Zoho just issued that could not be stored: revoke it (a user holds only 20)."""
    if token is None:
        return
    try:
        revocation.revoke_at_zoho(services, subscription, token, data_centre)
    except ZohoError:
        metrics.add_metric(name="RefreshTokenLeaked", unit=MetricUnit.Count, value=1)
        logger.error(
            "a new refresh token could neither be stored nor revoked",
            extra={"subscription_id": subscription.subscription_id, "token": mask(token)},
        )


def _same_hash(binding: str, expected_hash: str) -> bool:
    return hmac.compare_digest(state.hash_secret_token(binding), expected_hash)

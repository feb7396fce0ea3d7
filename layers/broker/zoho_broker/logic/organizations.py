"""Which Zoho organization a consent connected, and whether the subscription may take it.

Right after a code exchange, before the new tokens replace anything, the version's verification call
(catalogue data: CRM ``GET /org``) names the organization. A subscription bound to another one refuses
the consent; a failed call leaves the connection to be stored, with the reason (docs/organizations.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools import Logger

from zoho_broker.api_base import (
    api_base,
    api_headers,
    api_query_parameters,
    fill_custom_fields,
    json_path_value,
)
from zoho_broker.catalogue import IntegrationVersionFields
from zoho_broker.errors import InvalidInput, OrganizationMismatch, OrganizationUnverified, ZohoError
from zoho_broker.models import BoundOrganization, Subscription, utc_now
from zoho_broker.services import Services

logger = Logger(child=True)

# The verification call shares the callback's time with the code exchange and a possible revocation
# (template.yaml's 29 s): it gets less than Zoho's token calls.
VERIFICATION_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Check:
    """What the verification call found: an organization, or why there is none (both None: no call)."""

    organization: BoundOrganization | None = None
    error: str | None = None


def verify(
    services: Services,
    subscription: Subscription,
    version: IntegrationVersionFields,
    *,
    access_token: str,
    data_centre: str,
    api_domain: str | None,
) -> Check:
    """Call the version's verification endpoint with the new access token; never raises for Zoho's sake."""
    spec = version.verification
    if spec is None:
        return Check()
    log = {"subscription_id": subscription.subscription_id}
    try:
        base = api_base(
            api_url=subscription.api_url,
            data_centre=data_centre,
            api_domain=api_domain,
            accounts_servers=services.accounts_servers,
        )
        answer = services.zoho.api_get(
            base + fill_custom_fields(spec.path, version, subscription.custom_fields),
            access_token=access_token,
            headers=api_headers(version, subscription.custom_fields),
            params=api_query_parameters(version, subscription.custom_fields),
            timeout_seconds=min(VERIFICATION_TIMEOUT_SECONDS, services.settings.zoho_timeout_seconds),
        )
    except ZohoError as error:
        logger.warning("organization verification failed", extra={**log, "zoho_code": error.zoho_code})
        return Check(error=f"verification failed: {error.zoho_code}")
    except InvalidInput as error:
        return Check(error=f"verification failed: {error.message}")
    organization_id = json_path_value(answer, spec.organization_id)
    name = json_path_value(answer, spec.organization_name)
    if not _text(organization_id) or not _text(name):
        logger.warning("organization verification answered no organization", extra=log)
        return Check(
            error=f"verification failed: the answer has no organization at {spec.organization_id} "
            f"and {spec.organization_name}"
        )
    return Check(
        organization=BoundOrganization(
            id=str(organization_id)[:128], name=str(name)[:256], verified_at=utc_now()
        )
    )


def refusal(subscription: Subscription, check: Check) -> OrganizationMismatch | OrganizationUnverified | None:
    """The refusal when a bound subscription's consent connected another organization, or one the call
    could not name (nothing shows it is the bound one: the same link is tried again); else None."""
    bound, offered = subscription.organization, check.organization
    if bound is not None and check.error is not None:
        return OrganizationUnverified(check.error)
    if bound is None or offered is None or bound.id == offered.id:
        return None
    return OrganizationMismatch(
        f"This subscription is connected to the Zoho organization {bound.name} (id {bound.id}), but the "
        f"account you signed in with belongs to {offered.name} (id {offered.id}). Nothing was changed: "
        f"the connection to {bound.name} keeps working. Sign in with an account of {bound.name}, or ask "
        "the administrator to clear the subscription's organization binding first."
    )


def _text(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip() != ""

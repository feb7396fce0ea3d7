"""GET /oauth/callback: Zoho sends the person back here with a code; exchange it and store the tokens."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from zoho_broker import pages, snapstart
from zoho_broker.logic import connect
from zoho_broker.observability import logger, metrics
from zoho_broker.page_routes import Answer, PageRoutes, Request, browser_binding, html, parameters
from zoho_broker.services import get_services

routes = PageRoutes()


# Under SnapStart, into the snapshot: settings, catalogue, AWS clients and the Zoho client (no I/O).
snapstart.prepare(
    lambda: get_services().make(
        "flows", "subscriptions", "secrets", "signing_keys", "accounts_servers", "zoho"
    )
)


class CallbackQuery(BaseModel):
    """What Zoho puts in the query; anything else there is ignored."""

    state: str = Field(min_length=1, max_length=256)
    code: str | None = Field(default=None, min_length=1, max_length=1024)
    error: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    location: str | None = Field(default=None, min_length=1, max_length=16, pattern=r"^[A-Za-z]+$")
    accounts_server: str | None = Field(default=None, alias="accounts-server", min_length=1, max_length=256)


@routes.route("GET /oauth/callback")
def oauth_callback(request: Request) -> Answer:
    query = parameters(CallbackQuery, request.query)
    params = connect.CallbackParams(
        state=query.state,
        code=query.code,
        error=query.error,
        location=query.location,
        accounts_server=query.accounts_server,
    )
    services = get_services()
    outcome = connect.complete(services, params, browser_binding=browser_binding(request, services.settings))
    logger.append_keys(subscription_id=outcome.subscription_id)
    if outcome.denied:
        return html(pages.access_denied(outcome.integration_name))
    return html(
        pages.connected(outcome.integration_name, outcome.data_centre_label, outcome.organization_name)
    )


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return routes.resolve(event)

"""GET /oauth/callback: Zoho sends the person back here with a code; exchange it and store the tokens."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from zoho_broker import pages, web
from zoho_broker.logic import connect
from zoho_broker.observability import logger, metrics
from zoho_broker.services import get_services

app = APIGatewayHttpResolver(enable_validation=True)
web.install_page_errors(app)


@app.get("/oauth/callback")
def oauth_callback(
    state: Annotated[str, Query(min_length=1, max_length=256)],
    code: Annotated[str | None, Query(min_length=1, max_length=1024)] = None,
    error: Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] = None,
    location: Annotated[str | None, Query(min_length=1, max_length=16, pattern=r"^[A-Za-z]+$")] = None,
    accounts_server: Annotated[
        str | None, Query(alias="accounts-server", min_length=1, max_length=256)
    ] = None,
) -> Response[str]:
    params = connect.CallbackParams(
        state=state, code=code, error=error, location=location, accounts_server=accounts_server
    )
    services = get_services()
    outcome = connect.complete(services, params, browser_binding=web.browser_binding(app, services.settings))
    logger.append_keys(subscription_id=outcome.subscription_id)
    if outcome.denied:
        return web.html(pages.access_denied(outcome.integration_name))
    return web.html(pages.connected(outcome.integration_name, outcome.data_centre_label))


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

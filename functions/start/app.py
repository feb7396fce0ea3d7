"""GET /connect/{link}: open a connect link and send the person to Zoho's consent page."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from zoho_broker import web
from zoho_broker.logic import connect
from zoho_broker.observability import logger
from zoho_broker.services import get_services

app = APIGatewayHttpResolver(enable_validation=True)
web.install_page_errors(app)


@app.get("/connect/<link>")
def open_connect_link(link: Annotated[str, Path(min_length=1, max_length=128)]) -> Response[str]:
    services = get_services()
    outcome = connect.start(
        services,
        link_token=link,
        browser_binding=web.cookie(app, web.BINDING_COOKIE),
        base_url=web.base_url(app, services.settings),
    )
    logger.append_keys(subscription_id=outcome.subscription_id)
    binding = web.binding_cookie(
        outcome.browser_binding,
        secure=services.settings.cookie_secure,
        max_age=services.settings.state_ttl_seconds,
    )
    return web.redirect(outcome.authorization_url, cookies=[binding])


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

"""GET and POST /connect/{link}: show a connect link's page, then send the person to Zoho's consent page."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from zoho_broker import pages, web
from zoho_broker.logic import connect
from zoho_broker.observability import logger
from zoho_broker.services import get_services

app = APIGatewayHttpResolver(enable_validation=True)
web.install_page_errors(app)


LinkToken = Annotated[str, Path(min_length=1, max_length=128)]


@app.get("/connect/<link>")
def show_connect_link(link: LinkToken) -> Response[str]:
    """A page with a Continue button; opening (or previewing) the link uses nothing up."""
    services = get_services()
    shown = connect.preview(services, link_token=link)
    page = pages.continue_to_zoho(shown.integration_name, shown.subscription_name, action=f"/connect/{link}")
    # The form posts here and is then redirected to Zoho: browsers check form-action on both.
    origins = services.accounts_servers.by_data_centre.values()
    return web.html(page, pages.security_headers(form_action=["'self'", *origins]))


@app.post("/connect/<link>")
def open_connect_link(link: LinkToken) -> Response[str]:
    services = get_services()
    outcome = connect.start(
        services,
        link_token=link,
        browser_binding=web.browser_binding(app, services.settings),
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

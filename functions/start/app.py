"""GET and POST /connect/{link}: show a connect link's page, then send the person to Zoho's consent page."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from zoho_broker import pages, snapstart
from zoho_broker.logic import connect
from zoho_broker.observability import logger
from zoho_broker.page_routes import (
    Answer,
    PageRoutes,
    Request,
    base_url,
    binding_cookie,
    browser_binding,
    html,
    parameters,
    redirect,
)
from zoho_broker.services import get_services

routes = PageRoutes()


# Under SnapStart, into the snapshot: the settings, the catalogue and the AWS clients (no I/O).
snapstart.prepare(lambda: get_services().make("flows", "subscriptions", "signing_keys", "accounts_servers"))


class LinkPath(BaseModel):
    link: str = Field(min_length=1, max_length=128)


@routes.route("GET /connect/{link}")
def show_connect_link(request: Request) -> Answer:
    """A page with a Continue button; opening (or previewing) the link uses nothing up."""
    link = parameters(LinkPath, request.path_parameters, location="path.").link
    services = get_services()
    shown = connect.preview(services, link_token=link)
    page = pages.continue_to_zoho(shown.integration_name, shown.subscription_name, action=f"/connect/{link}")
    # The form posts here and is then redirected to Zoho: browsers check form-action on both.
    origins = services.accounts_servers.by_data_centre.values()
    return html(page, pages.security_headers(form_action=["'self'", *origins]))


@routes.route("POST /connect/{link}")
def open_connect_link(request: Request) -> Answer:
    link = parameters(LinkPath, request.path_parameters, location="path.").link
    services = get_services()
    outcome = connect.start(
        services,
        link_token=link,
        browser_binding=browser_binding(request, services.settings),
        base_url=base_url(services.settings, request.domain_name),
    )
    logger.append_keys(subscription_id=outcome.subscription_id)
    binding = binding_cookie(
        outcome.browser_binding,
        secure=services.settings.cookie_secure,
        max_age=services.settings.state_ttl_seconds,
    )
    return redirect(outcome.authorization_url, cookies=[binding])


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return routes.resolve(event)

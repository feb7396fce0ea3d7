"""Admin API (AWS_IAM): integrations catalogue, subscriptions, connect links, the OpenAPI document."""

from __future__ import annotations

import json
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from zoho_broker import web
from zoho_broker.catalogue import IntegrationVersion, IntegrationVersionFields
from zoho_broker.logic import connect, integrations, refresh, revocation, subscriptions
from zoho_broker.models import (
    AccessToken,
    ConnectLink,
    ErrorBody,
    GrantCodeSubmission,
    IntegrationCreate,
    IntegrationList,
    IntegrationVersionUpdate,
    IntegrationView,
    RefreshOutcome,
    SubscriptionCreate,
    SubscriptionList,
    SubscriptionUpdate,
    SubscriptionView,
)
from zoho_broker.observability import logger, metrics
from zoho_broker.services import get_services

app = APIGatewayHttpResolver(enable_validation=True)
web.json_api(app)

SubscriptionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
IntegrationPath = Annotated[str, Path(min_length=2, max_length=64, pattern=r"^[a-z][a-z0-9-]{1,63}$")]
VersionPath = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]

ERRORS = {
    400: "invalid_request: a parameter or the body is invalid; details names which",
    404: "not_found: there is no such subscription, integration or version",
    409: "conflict (the name is taken, the version is in use or changed meanwhile, the authorization type does "
    "not allow it), not_connected, "
    "needs_reauthentication or secret_unreadable",
    413: "payload_too_large: the body is larger than 64 KiB",
    415: "unsupported_media_type: send the body as JSON, Content-Type: application/json",
    502: "zoho_error: Zoho refused; the message says what to do",
    503: "service_unavailable, busy, or zoho_error while Zoho is failing: nothing was changed, try again",
}
BODY_ERRORS = (400, 413, 415)


def answers(success: int, description: str, *errors: int) -> dict[int, OpenAPIResponse]:
    """A route's answers for the OpenAPI document: its success, whose schema is the function's return
    type, and its errors, all an ErrorBody."""
    declared: dict[int, OpenAPIResponse] = {success: {"description": description}}
    for status in sorted(errors):
        declared[status] = {
            "description": ERRORS[status],
            "content": {content_types.APPLICATION_JSON: {"model": ErrorBody}},
        }
    return declared


@app.not_found
def no_such_route(_: NotFoundError) -> Response[Any]:
    """An unknown path is a 404 and a known path asked with another method a 405, both as JSON errors."""
    path, method = app.current_event.path, app.current_event.http_method
    # Powertools keeps its routes to itself; they are the one list of what this function serves.
    routes = app._static_routes + app._dynamic_routes
    allowed = sorted({route.method for route in routes if route.rule.match(path)})
    if not allowed:
        return web.json_error(HTTPStatus.NOT_FOUND, "not_found", "The admin API has no such route.")
    refused = web.json_error(
        HTTPStatus.METHOD_NOT_ALLOWED,
        "method_not_allowed",
        f"{method} is not allowed here: use {', '.join(allowed)}.",
    )
    refused.headers["Allow"] = ", ".join(allowed)
    return refused


@app.get(
    "/admin/integrations",
    summary="The integrations catalogue: Zoho products and their versions (built-ins and the operator's)",
    responses=answers(200, "The catalogue", 503),
)
def list_integrations() -> IntegrationList:
    return integrations.list_all(get_services())


@app.post(
    "/admin/integrations",
    summary="Create an integration with its first version",
    status_code=HTTPStatus.CREATED,
    responses=answers(201, "The new integration", *BODY_ERRORS, 409, 503),
)
def create_integration(body: IntegrationCreate) -> IntegrationView:
    return integrations.create(get_services(), body, changed_by=web.caller_identity(app))


@app.get(
    "/admin/integrations/<integration>",
    summary="One integration and its versions",
    responses=answers(200, "The integration", 400, 404, 503),
)
def get_integration(integration: IntegrationPath) -> IntegrationView:
    return integrations.get(get_services(), integration)


@app.post(
    "/admin/integrations/<integration>/versions",
    summary="Add a version to an integration",
    status_code=HTTPStatus.CREATED,
    responses=answers(201, "The new version", *BODY_ERRORS, 404, 409, 503),
)
def create_integration_version(
    integration: IntegrationPath, body: IntegrationVersionFields
) -> IntegrationVersion:
    return integrations.add_version(get_services(), integration, body, changed_by=web.caller_identity(app))


@app.get(
    "/admin/integrations/<integration>/versions/<version>",
    summary="One version of an integration",
    responses=answers(200, "The version", 400, 404, 503),
)
def get_integration_version(integration: IntegrationPath, version: VersionPath) -> IntegrationVersion:
    return integrations.get_version(get_services(), integration, version)


@app.patch(
    "/admin/integrations/<integration>/versions/<version>",
    summary="Change some fields of a version (the next consent uses them)",
    responses=answers(200, "The version, changed", *BODY_ERRORS, 404, 409, 503),
)
def update_integration_version(
    integration: IntegrationPath, version: VersionPath, body: IntegrationVersionUpdate
) -> IntegrationVersion:
    return integrations.update_version(
        get_services(), integration, version, body, changed_by=web.caller_identity(app)
    )


@app.delete(
    "/admin/integrations/<integration>/versions/<version>",
    summary="Delete a version no subscription uses",
    responses=answers(204, "Deleted; no body", 400, 404, 409, 503),
)
def delete_integration_version(integration: IntegrationPath, version: VersionPath) -> Response[str]:
    integrations.delete_version(get_services(), integration, version, changed_by=web.caller_identity(app))
    return Response(status_code=HTTPStatus.NO_CONTENT, body="")


@app.post(
    "/admin/subscriptions",
    summary="Create a subscription",
    status_code=HTTPStatus.CREATED,
    responses=answers(201, "The new subscription", *BODY_ERRORS, 409, 503),
)
def create_subscription(body: SubscriptionCreate) -> SubscriptionView:
    return subscriptions.create(get_services(), body)


@app.get(
    "/admin/subscriptions",
    summary="List subscriptions (status, no tokens)",
    responses=answers(200, "A page of subscriptions", 400, 503),
)
def list_subscriptions(
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> SubscriptionList:
    return subscriptions.list_page(get_services(), limit=limit, cursor=cursor)


@app.get(
    "/admin/subscriptions/<subscription_id>",
    summary="One subscription with masked secrets",
    responses=answers(200, "The subscription", 400, 404, 409, 503),
)
def get_subscription(subscription_id: SubscriptionId) -> SubscriptionView:
    return subscriptions.get(get_services(), subscription_id)


@app.patch(
    "/admin/subscriptions/<subscription_id>",
    summary="Change some fields of a subscription",
    responses=answers(200, "The subscription, changed", *BODY_ERRORS, 404, 409, 503),
)
def update_subscription(subscription_id: SubscriptionId, body: SubscriptionUpdate) -> SubscriptionView:
    return subscriptions.update(get_services(), subscription_id, body)


@app.delete(
    "/admin/subscriptions/<subscription_id>",
    summary="Delete a subscription and its secret",
    responses=answers(204, "Deleted; no body", 400, 404, 409, 503),
)
def delete_subscription(subscription_id: SubscriptionId) -> Response[str]:
    subscriptions.delete(get_services(), subscription_id)
    return Response(status_code=HTTPStatus.NO_CONTENT, body="")


@app.post(
    "/admin/subscriptions/<subscription_id>/connect-links",
    summary="A short-lived, single-use link that starts the consent flow",
    status_code=HTTPStatus.CREATED,
    responses=answers(201, "The new connect link", 400, 404, 503),
)
def create_connect_link(subscription_id: SubscriptionId) -> ConnectLink:
    services = get_services()
    return subscriptions.create_connect_link(
        services, subscription_id, base_url=web.base_url(app, services.settings)
    )


@app.post(
    "/admin/subscriptions/<subscription_id>/grant-code",
    summary="Connect with a Self Client grant code: exchanged at the data centre that issued it",
    responses=answers(200, "The subscription, connected", *BODY_ERRORS, 404, 409, 502, 503),
)
def submit_grant_code(subscription_id: SubscriptionId, body: GrantCodeSubmission) -> SubscriptionView:
    services = get_services()
    connect.exchange_grant_code(
        services, subscription_id, code=body.code.get_secret_value(), data_centre=body.data_centre
    )
    return subscriptions.get(services, subscription_id)


@app.get(
    "/admin/subscriptions/<subscription_id>/token",
    summary="A valid access token for a consumer (refreshed first when it expires within five minutes)",
    responses=answers(200, "A token valid for five minutes at least", 400, 404, 409, 502, 503),
)
def get_access_token(subscription_id: SubscriptionId) -> AccessToken:
    return refresh.vend_token(get_services(), subscription_id)


@app.post(
    "/admin/subscriptions/<subscription_id>/refresh",
    summary="Refresh the access token now",
    responses=answers(200, "Refreshed", 400, 404, 409, 502, 503),
)
def refresh_now(subscription_id: SubscriptionId) -> RefreshOutcome:
    return refresh.refresh_now(get_services(), subscription_id)


@app.post(
    "/admin/subscriptions/<subscription_id>/revoke",
    summary="Disconnect: revoke the refresh token at Zoho and clear the tokens; the subscription stays",
    responses=answers(200, "The subscription, not connected", 400, 404, 409, 503),
)
def revoke(subscription_id: SubscriptionId) -> SubscriptionView:
    services = get_services()
    revocation.disconnect(services, subscription_id)
    return subscriptions.get(services, subscription_id)


@cache
def openapi_json() -> str:
    """Powertools' document, less what this API never answers: 422 HTTPValidationError (invalid requests
    are 400 with an ErrorBody) and a body on 204."""
    document = json.loads(app.get_openapi_json_schema(title="Zoho OAuth broker admin API", version="1"))
    for path_item in document["paths"].values():
        for operation in path_item.values():
            operation["responses"].pop("422", None)
            operation["responses"].get("204", {}).pop("content", None)
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        document["components"]["schemas"].pop(unused, None)
    return json.dumps(document, indent=2)


@app.get("/admin/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
def openapi_document() -> Response[str]:
    return Response(
        status_code=HTTPStatus.OK, content_type=content_types.APPLICATION_JSON, body=openapi_json()
    )


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

"""Admin API (AWS_IAM): integrations catalogue, subscriptions, connect links, the OpenAPI document."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from zoho_broker import web
from zoho_broker.catalogue import Catalogue
from zoho_broker.logic import refresh, subscriptions
from zoho_broker.models import (
    AccessToken,
    ConnectLink,
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


def _created(model: SubscriptionView | ConnectLink) -> Response[Any]:
    return Response(
        status_code=HTTPStatus.CREATED,
        content_type=content_types.APPLICATION_JSON,
        body=model.model_dump(mode="json"),
    )


@app.get("/admin/integrations", summary="The integrations catalogue: Zoho products and their versions")
def list_integrations() -> Catalogue:
    return get_services().catalogue


@app.post(
    "/admin/subscriptions", summary="Create a subscription", responses={201: {"description": "Created"}}
)
def create_subscription(body: SubscriptionCreate) -> Response[Any]:
    return _created(subscriptions.create(get_services(), body))


@app.get("/admin/subscriptions", summary="List subscriptions (status, no tokens)")
def list_subscriptions(
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> SubscriptionList:
    return subscriptions.list_page(get_services(), limit=limit, cursor=cursor)


@app.get("/admin/subscriptions/<subscription_id>", summary="One subscription with masked secrets")
def get_subscription(subscription_id: SubscriptionId) -> SubscriptionView:
    return subscriptions.get(get_services(), subscription_id)


@app.patch("/admin/subscriptions/<subscription_id>", summary="Change some fields of a subscription")
def update_subscription(subscription_id: SubscriptionId, body: SubscriptionUpdate) -> SubscriptionView:
    return subscriptions.update(get_services(), subscription_id, body)


@app.delete("/admin/subscriptions/<subscription_id>", summary="Delete a subscription and its secret")
def delete_subscription(subscription_id: SubscriptionId) -> Response[str]:
    subscriptions.delete(get_services(), subscription_id)
    return Response(status_code=HTTPStatus.NO_CONTENT, body="")


@app.post(
    "/admin/subscriptions/<subscription_id>/connect-links",
    summary="A short-lived, single-use link that starts the consent flow",
    responses={201: {"description": "Created"}},
)
def create_connect_link(subscription_id: SubscriptionId) -> Response[Any]:
    services = get_services()
    link = subscriptions.create_connect_link(
        services, subscription_id, base_url=web.base_url(app, services.settings)
    )
    return _created(link)


@app.get(
    "/admin/subscriptions/<subscription_id>/token",
    summary="A valid access token for a consumer (refreshed first when it expires within five minutes)",
)
def get_access_token(subscription_id: SubscriptionId) -> AccessToken:
    return refresh.vend_token(get_services(), subscription_id)


@app.post("/admin/subscriptions/<subscription_id>/refresh", summary="Refresh the access token now")
def refresh_now(subscription_id: SubscriptionId) -> RefreshOutcome:
    return refresh.refresh_now(get_services(), subscription_id)


@app.post(
    "/admin/subscriptions/<subscription_id>/revoke",
    summary="Disconnect: revoke the refresh token at Zoho and clear the tokens; the subscription stays",
)
def revoke(subscription_id: SubscriptionId) -> SubscriptionView:
    services = get_services()
    refresh.disconnect(services, subscription_id)
    return subscriptions.get(services, subscription_id)


@app.get("/admin/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
def openapi_document() -> Response[str]:
    document = app.get_openapi_json_schema(title="Zoho OAuth broker admin API", version="1")
    return Response(status_code=HTTPStatus.OK, content_type=content_types.APPLICATION_JSON, body=document)


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

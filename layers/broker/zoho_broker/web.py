"""HTTP glue shared by the handlers: base URLs, cookies, redirects, and errors mapped to answers."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

from zoho_broker import pages
from zoho_broker.config import Settings
from zoho_broker.errors import (
    BrokerError,
    ConnectLinkInvalid,
    StateRejected,
    UntrustedAccountsServer,
    ZohoError,
)
from zoho_broker.observability import logger

BINDING_COOKIE = "zoho_broker_binding"
NEW_LINK_HINT = "Ask whoever sent you the connect link for a new one, and open it in this browser."


def base_url(app: APIGatewayHttpResolver, settings: Settings) -> str:
    """The broker's public origin: configured, else the API Gateway domain the request came in on."""
    if settings.public_base_url:
        return settings.public_base_url
    domain = app.current_event.request_context.domain_name
    return f"https://{domain}"


def cookie(app: APIGatewayHttpResolver, name: str) -> str | None:
    for raw in app.current_event.cookies or []:
        key, _, value = raw.partition("=")
        if key.strip() == name:
            return value.strip()
    return None


def binding_cookie(value: str, *, secure: bool, max_age: int) -> Cookie:
    # Lax: the callback is a top-level navigation from Zoho, which Lax cookies accompany.
    return Cookie(
        name=BINDING_COOKIE,
        value=value,
        path="/",
        secure=secure,
        http_only=True,
        max_age=max_age,
        same_site=SameSite.LAX_MODE,
    )


def redirect(location: str, *, cookies: list[Cookie]) -> Response[str]:
    return Response(
        status_code=HTTPStatus.FOUND,
        headers={"Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        cookies=cookies,
        body="",
    )


def html(page: pages.Page, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=page.status_code,
        content_type="text/html; charset=utf-8",
        headers=headers or pages.SECURITY_HEADERS,
        body=page.html,
    )


def validation_details(error: RequestValidationError) -> list[dict[str, str]]:
    """Where and what, never the input itself (it may be a client secret)."""
    details = []
    for item in error.errors():
        location = ".".join(str(part) for part in item.get("loc", ()))
        details.append({"field": location, "message": str(item.get("msg", "invalid value"))})
    return details


def _page_for(error: BrokerError) -> pages.Page:
    if isinstance(error, ConnectLinkInvalid):
        return pages.failure(
            "This connect link can't be used", error.message, status_code=410, hint=NEW_LINK_HINT
        )
    if isinstance(error, StateRejected | UntrustedAccountsServer):
        return pages.failure(
            "This sign-in can't be completed", error.message, status_code=400, hint=NEW_LINK_HINT
        )
    if isinstance(error, ZohoError):
        if error.transient:
            return pages.failure(
                "Zoho is not answering right now",
                f"{error.message} Nothing was changed.",
                status_code=503,
                hint="Please try again in a few minutes with a new connect link.",
            )
        if error.zoho_code == "invalid_code":
            message = "Zoho rejected the authorization code: it expired or was already used."
        else:
            message = f"Zoho refused the connection ({error.zoho_code})."
        return pages.failure("Zoho did not accept the sign-in", message, status_code=502, hint=NEW_LINK_HINT)
    return pages.failure("This request can't be completed", error.message, status_code=error.status_code)


def install_page_errors(app: APIGatewayHttpResolver) -> None:
    """Errors of the person-facing routes become small HTML pages, never a stack trace."""

    @app.exception_handler(BrokerError)
    def _broker_error(error: BrokerError) -> Response[str]:
        logger.info("request refused", extra={"error": error.code, "reason": error.message})
        return html(_page_for(error))

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response[str]:
        fields = ", ".join(d["field"].removeprefix("query.") for d in validation_details(error))
        logger.info("invalid request", extra={"fields": fields})
        return html(
            pages.failure(
                "This link is incomplete",
                f"The address is missing or has an invalid value for: {fields}.",
                status_code=400,
                hint=NEW_LINK_HINT,
            )
        )

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response[str]:
        logger.exception("unexpected error")
        return html(
            pages.failure(
                "Something went wrong",
                "The broker could not finish this request.",
                status_code=500,
                hint="Please try again in a few minutes.",
            )
        )


def json_error(
    status_code: int, code: str, message: str, details: list[dict[str, str]] | None = None
) -> Response[Any]:
    body: dict[str, Any] = {"error": code, "message": message}
    if details:
        body["details"] = details
    return Response(status_code=status_code, content_type=content_types.APPLICATION_JSON, body=body)


def install_json_errors(app: APIGatewayHttpResolver) -> None:
    """Errors of the admin API become JSON with a useful message, never a secret or a trace."""

    @app.exception_handler(BrokerError)
    def _broker_error(error: BrokerError) -> Response[Any]:
        logger.info("request refused", extra={"error": error.code, "reason": error.message})
        return json_error(error.status_code, error.code, error.message)

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response[Any]:
        details = validation_details(error)
        fields = ", ".join(d["field"] for d in details)
        return json_error(400, "invalid_request", f"The request is invalid: check {fields}.", details)

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response[Any]:
        logger.exception("unexpected error")
        return json_error(500, "internal_error", "The broker could not finish this request.")

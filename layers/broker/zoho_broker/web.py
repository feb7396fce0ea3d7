"""HTTP glue shared by the handlers: base URLs, cookies, redirects, request bodies, and errors mapped to
answers."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

from zoho_broker import pages
from zoho_broker.config import Settings
from zoho_broker.errors import (
    BrokerError,
    ConnectLinkInvalid,
    InvalidInput,
    PayloadTooLarge,
    RetryWithLink,
    ServiceUnavailable,
    StateRejected,
    UnsupportedMediaType,
    UntrustedAccountsServer,
    ZohoError,
)
from zoho_broker.observability import logger
from zoho_broker.store.aws import is_unavailable

BINDING_COOKIE = "zoho_broker_binding"
# Browsers accept a __Host- cookie only when it is Secure, has Path=/ and no Domain: nobody on a
# sibling subdomain can plant or overwrite it.
SECURE_BINDING_COOKIE = "__Host-" + BINDING_COOKIE
NEW_LINK_HINT = "Ask whoever sent you the connect link for a new one, and open it in this browser."
RETRY_HINT = "Nothing was changed. Please try again in a minute."
NO_STORE = {"Cache-Control": "no-store"}

# Admin bodies are small JSON documents; anything beyond these bounds is refused before parsing deeper.
MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16
MAX_NUMBER_CHARACTERS = 32


def base_url(app: APIGatewayHttpResolver, settings: Settings) -> str:
    """The broker's public origin: configured, else the API Gateway domain the request came in on."""
    if settings.public_base_url:
        return settings.public_base_url
    domain = app.current_event.request_context.domain_name
    return f"https://{domain}"


def caller_identity(app: APIGatewayHttpResolver) -> str:
    """Who signed the admin request (API Gateway's IAM authorizer context): recorded on what they change."""
    iam = app.current_event.request_context.authorizer.iam
    return iam.user_arn or iam.caller_id or "unknown"


def cookie(app: APIGatewayHttpResolver, name: str) -> str | None:
    for raw in app.current_event.cookies or []:
        key, _, value = raw.partition("=")
        if key.strip() == name:
            return value.strip()
    return None


def binding_cookie_name(*, secure: bool) -> str:
    return SECURE_BINDING_COOKIE if secure else BINDING_COOKIE


def browser_binding(app: APIGatewayHttpResolver, settings: Settings) -> str | None:
    return cookie(app, binding_cookie_name(secure=settings.cookie_secure))


def binding_cookie(value: str, *, secure: bool, max_age: int) -> Cookie:
    # Lax: the callback is a top-level navigation from Zoho, which Lax cookies accompany.
    return Cookie(
        name=binding_cookie_name(secure=secure),
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
        headers={
            "Location": location,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "Strict-Transport-Security": pages.HSTS,
        },
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
        # Dictionary keys of the body appear in the location: keep them short.
        location = ".".join(str(part)[:64] for part in item.get("loc", ()))
        message = str(item.get("msg", "invalid value"))
        given = item.get("input")
        if isinstance(given, str) and len(given) >= 4 and given in message:
            message = str(item.get("type", "invalid value"))
        details.append({"field": location, "message": message})
    return details


def _body_error(message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "body_invalid", "loc": ("body",), "msg": message, "input": {}}])


def _bounded_number(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_bounded(text: str) -> Any:
        if len(text) > MAX_NUMBER_CHARACTERS:
            raise _body_error(f"numbers may have at most {MAX_NUMBER_CHARACTERS} characters")
        return parse(text)

    return parse_bounded


def _reject_constant(name: str) -> Any:
    raise _body_error(f"{name} is not a JSON number")


def _depth(document: Any) -> int:
    deepest, pending = 0, [(document, 1)]
    while pending:
        value, depth = pending.pop()
        deepest = max(deepest, depth)
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        pending.extend((child, depth + 1) for child in children)
    return deepest


def parse_json_body(body: str | None, *, base64_encoded: bool, content_type: str) -> Any:
    """The admin API's only body format: a bounded JSON document in UTF-8.

    Every refusal is a clear 4xx (415, 413 or 400) that quotes nothing of the body.
    """
    if not body:
        return None
    media_type, *parameters = (part.strip().lower() for part in content_type.split(";"))
    charset = next((p.partition("=")[2].strip('" ') for p in parameters if p.startswith("charset=")), "utf-8")
    if media_type != "application/json" or charset != "utf-8":
        raise UnsupportedMediaType("Send the request body as JSON, with Content-Type: application/json.")
    try:
        raw = (
            base64.b64decode(body, validate=True) if base64_encoded else body.encode("utf-8", "surrogatepass")
        )
    except binascii.Error as error:
        raise _body_error("the body could not be decoded") from error
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The request body is larger than {MAX_BODY_BYTES // 1024} KiB.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _body_error("the body is not valid UTF-8") from error
    try:
        document = json.loads(
            text,
            parse_int=_bounded_number(int),
            parse_float=_bounded_number(float),
            parse_constant=_reject_constant,
        )
    except RecursionError as error:
        raise _body_error(f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep") from error
    except ValueError as error:
        raise _body_error("the body is not valid JSON") from error
    if _depth(document) > MAX_JSON_DEPTH:
        raise _body_error(f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep")
    return document


class JsonBodyValidation(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, with bodies read by ``parse_json_body`` (JSON only, bounded)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def _get_body(self, app: Any) -> Any:
        event = app.current_event
        return parse_json_body(
            event.body,
            base64_encoded=bool(event.is_base64_encoded),
            content_type=event.headers.get("content-type", ""),
        )


def json_api(app: APIGatewayHttpResolver) -> APIGatewayHttpResolver:
    """Bounded JSON bodies, no-store answers and JSON errors for an API resolver."""
    # Powertools builds its validation middleware in the constructor; this replaces only body reading.
    app._request_validation_middleware = JsonBodyValidation()

    def no_store(app: APIGatewayHttpResolver, next_middleware: Callable[..., Response[Any]]) -> Response[Any]:
        response = next_middleware(app)
        response.headers.update(NO_STORE)
        return response

    app.use([no_store])
    install_json_errors(app)
    return app


def _page_for(error: BrokerError) -> pages.Page:
    if isinstance(error, ConnectLinkInvalid):
        return pages.failure(
            "This connect link can't be used", error.message, status_code=410, hint=NEW_LINK_HINT
        )
    if isinstance(error, RetryWithLink):
        return pages.failure(
            "This sign-in could not be finished",
            error.message,
            status_code=error.status_code,
            hint="Open the same connect link again in a minute: it still works.",
        )
    if isinstance(error, ServiceUnavailable):
        return pages.failure(
            "The broker is busy right now", error.message, status_code=error.status_code, hint=RETRY_HINT
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
        if is_unavailable(error):
            return html(_page_for(_unavailable(error)))
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
    return Response(
        status_code=status_code, content_type=content_types.APPLICATION_JSON, body=body, headers=NO_STORE
    )


def _unavailable(error: Exception) -> ServiceUnavailable:
    logger.warning("an AWS service failed", extra={"error": type(error).__name__})
    return ServiceUnavailable(
        "The broker's storage did not answer; nothing was changed. Try again in a minute."
    )


def install_json_errors(app: APIGatewayHttpResolver) -> None:
    """Errors of the admin API become JSON with a useful message, never a secret or a trace."""

    @app.exception_handler(BrokerError)
    def _broker_error(error: BrokerError) -> Response[Any]:
        logger.info("request refused", extra={"error": error.code, "reason": error.message})
        # Zoho slow or failing is a passing condition: 503 (retry); a refusal stays 502.
        transient = isinstance(error, ZohoError) and error.transient
        details = error.details if isinstance(error, InvalidInput) else None
        return json_error(503 if transient else error.status_code, error.code, error.message, details)

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response[Any]:
        details = validation_details(error)
        fields = ", ".join(d["field"] for d in details)
        return json_error(400, "invalid_request", f"The request is invalid: check {fields}.", details)

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response[Any]:
        if is_unavailable(error):
            refused = _unavailable(error)
            return json_error(refused.status_code, refused.code, refused.message)
        logger.exception("unexpected error")
        return json_error(500, "internal_error", "The broker could not finish this request.")

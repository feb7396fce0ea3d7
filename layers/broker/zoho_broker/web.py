"""HTTP glue of the admin API (Powertools' event handler): base URLs, bounded JSON bodies, and errors
mapped to JSON answers. The person-facing functions have their own, lighter glue (page_routes.py)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from zoho_broker import page_routes
from zoho_broker.config import Settings
from zoho_broker.errors import (
    BrokerError,
    InvalidInput,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from zoho_broker.observability import logger
from zoho_broker.page_routes import unavailable, validation_details
from zoho_broker.store.aws import is_unavailable

NO_STORE = {"Cache-Control": "no-store"}

# Admin bodies are small JSON documents; anything beyond these bounds is refused before parsing deeper.
MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16
MAX_NUMBER_CHARACTERS = 32


def base_url(app: APIGatewayHttpResolver, settings: Settings) -> str:
    return page_routes.base_url(settings, app.current_event.request_context.domain_name)


def caller_identity(app: APIGatewayHttpResolver) -> str:
    """Who signed the admin request (API Gateway's IAM authorizer context): recorded on what they change."""
    iam = app.current_event.request_context.authorizer.iam
    return iam.user_arn or iam.caller_id or "unknown"


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


def json_error(
    status_code: int, code: str, message: str, details: list[dict[str, str]] | None = None
) -> Response[Any]:
    body: dict[str, Any] = {"error": code, "message": message}
    if details:
        body["details"] = details
    return Response(
        status_code=status_code, content_type=content_types.APPLICATION_JSON, body=body, headers=NO_STORE
    )


def install_json_errors(app: APIGatewayHttpResolver) -> None:
    """Errors of the admin API become JSON with a useful message, never a secret or a trace."""

    @app.exception_handler(BrokerError)
    def _broker_error(error: BrokerError) -> Response[Any]:
        logger.info("request refused", extra={"error": error.code, "reason": error.message})
        details = error.details if isinstance(error, InvalidInput) else None
        return json_error(error.answer_status, error.code, error.message, details)

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response[Any]:
        details = validation_details(error)
        fields = ", ".join(d["field"] for d in details)
        return json_error(400, "invalid_request", f"The request is invalid: check {fields}.", details)

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response[Any]:
        if is_unavailable(error):
            refused = unavailable(error)
            return json_error(refused.status_code, refused.code, refused.message)
        logger.exception("unexpected error")
        return json_error(500, "internal_error", "The broker could not finish this request.")

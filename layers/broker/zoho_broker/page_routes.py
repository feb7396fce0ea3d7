"""HTTP for the person-facing functions (start and callback): an HTTP API event in, a page or a redirect
out, and every error a page, never a stack trace.

Written here rather than with Powertools' event handler, which the admin API keeps (web.py) for its
OpenAPI document: importing the event handler (every resolver, asyncio, and the OpenAPI validation with
its models) was about half of these functions' cold start, and they serve three routes. Parameters are
validated by pydantic models and refused with a 400 page that names the fields, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

from aws_lambda_powertools.shared.cookies import Cookie, SameSite
from pydantic import BaseModel, ValidationError

from zoho_broker import pages
from zoho_broker.config import Settings
from zoho_broker.errors import (
    BrokerError,
    ConnectLinkInvalid,
    OrganizationMismatch,
    RetryWithLink,
    ServiceUnavailable,
    StateRejected,
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


@dataclass(frozen=True)
class Request:
    """What the routes read of an API Gateway HTTP API (payload 2.0) event."""

    route_key: str
    path_parameters: Mapping[str, str]
    query: Mapping[str, str]
    cookies: Sequence[str]
    domain_name: str

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Request:
        context = event.get("requestContext") or {}
        return cls(
            route_key=str(event.get("routeKey", "")),
            path_parameters=event.get("pathParameters") or {},
            query=event.get("queryStringParameters") or {},
            cookies=event.get("cookies") or [],
            domain_name=str(context.get("domainName", "")),
        )

    def cookie(self, name: str) -> str | None:
        for raw in self.cookies:
            key, _, value = raw.partition("=")
            if key.strip() == name:
                return value.strip()
        return None


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]
    body: str
    cookies: list[Cookie] = field(default_factory=list)

    def to_response(self) -> dict[str, Any]:
        """The HTTP API's response format (payload 2.0)."""
        return {
            "statusCode": self.status_code,
            "body": self.body,
            "isBase64Encoded": False,
            "headers": self.headers,
            "cookies": [str(cookie) for cookie in self.cookies],
        }


Route = Callable[[Request], Answer]


class PageRoutes:
    """The routes of one function, found by the event's routeKey (API Gateway has matched the path)."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}

    def route(self, route_key: str) -> Callable[[Route], Route]:
        def register(function: Route) -> Route:
            self._routes[route_key] = function
            return function

        return register

    def resolve(self, event: Mapping[str, Any]) -> dict[str, Any]:
        request = Request.from_event(event)
        route = self._routes.get(request.route_key)
        try:
            if route is None:
                raise UnknownRoute(request.route_key)
            answer = route(request)
        except Exception as error:
            answer = error_answer(error)
        return answer.to_response()


class UnknownRoute(Exception):
    """API Gateway sent a route this function does not serve (a template out of step with the code)."""


class InvalidParameters(Exception):
    """Parameters that fail their model; ``fields`` names them, never their values."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(", ".join(fields))
        self.fields = fields


def parameters[M: BaseModel](model: type[M], values: Mapping[str, str], *, location: str = "") -> M:
    """Validate a route's parameters; failures name the fields (prefixed with ``location``)."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as error:
        fields = [field["field"] for field in validation_details(error)]
        raise InvalidParameters([f"{location}{name}" for name in fields]) from None


class HasErrors(Protocol):
    def errors(self) -> Sequence[Any]: ...


def validation_details(error: HasErrors) -> list[dict[str, str]]:
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


def base_url(settings: Settings, domain_name: str) -> str:
    """The broker's public origin: configured, else the API Gateway domain the request came in on."""
    return settings.public_base_url or f"https://{domain_name}"


def binding_cookie_name(*, secure: bool) -> str:
    return SECURE_BINDING_COOKIE if secure else BINDING_COOKIE


def browser_binding(request: Request, settings: Settings) -> str | None:
    return request.cookie(binding_cookie_name(secure=settings.cookie_secure))


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


def redirect(location: str, *, cookies: list[Cookie]) -> Answer:
    return Answer(
        status_code=HTTPStatus.FOUND,
        headers={
            "Location": location,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "Strict-Transport-Security": pages.HSTS,
        },
        body="",
        cookies=cookies,
    )


def html(page: pages.Page, headers: dict[str, str] | None = None) -> Answer:
    return Answer(
        status_code=page.status_code,
        headers={**(headers or pages.SECURITY_HEADERS), "Content-Type": "text/html; charset=utf-8"},
        body=page.html,
    )


def unavailable(error: Exception) -> ServiceUnavailable:
    logger.warning("an AWS service failed", extra={"error": type(error).__name__})
    return ServiceUnavailable(
        "The broker's storage did not answer; nothing was changed. Try again in a minute."
    )


def page_for(error: BrokerError) -> pages.Page:
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
    if isinstance(error, OrganizationMismatch):
        return pages.failure(
            "This Zoho account belongs to another organization", error.message, status_code=409
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


def error_answer(error: Exception) -> Answer:
    """Every error of the person-facing routes as a small HTML page."""
    if isinstance(error, BrokerError):
        logger.info("request refused", extra={"error": error.code, "reason": error.message})
        return html(page_for(error))
    if isinstance(error, InvalidParameters):
        fields = ", ".join(error.fields)
        logger.info("invalid request", extra={"fields": fields})
        return html(
            pages.failure(
                "This link is incomplete",
                f"The address is missing or has an invalid value for: {fields}.",
                status_code=400,
                hint=NEW_LINK_HINT,
            )
        )
    if isinstance(error, UnknownRoute):
        logger.warning("no such route", extra={"route": str(error)[:128]})
        return html(pages.failure("Page not found", "There is no page at this address.", status_code=404))
    if is_unavailable(error):
        return html(page_for(unavailable(error)))
    logger.exception("unexpected error")
    return html(
        pages.failure(
            "Something went wrong",
            "The broker could not finish this request.",
            status_code=500,
            hint="Please try again in a few minutes.",
        )
    )

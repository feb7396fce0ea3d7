"""The person-facing functions' HTTP glue: every request gets a page, whatever goes wrong."""

from typing import Any

from pydantic import BaseModel, Field

from zoho_broker.errors import ConnectLinkInvalid
from zoho_broker.page_routes import Answer, PageRoutes, Request, html, parameters
from zoho_broker.pages import failure


class Query(BaseModel):
    name: str = Field(min_length=1, max_length=8)


def event(route_key: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    return {"routeKey": route_key, "queryStringParameters": query, "requestContext": {"domainName": "x"}}


def routes() -> PageRoutes:
    served = PageRoutes()

    @served.route("GET /hello")
    def hello(request: Request) -> Answer:
        name = parameters(Query, request.query).name
        if name == "gone":
            raise ConnectLinkInvalid("This connect link has expired.")
        if name == "boom":
            raise RuntimeError("a bug")
        return html(failure("Hello", name, status_code=200))

    return served


def test_an_unserved_route_answers_a_404_page() -> None:
    answer = routes().resolve(event("POST /hello"))

    assert answer["statusCode"] == 404
    assert answer["headers"]["Content-Type"] == "text/html; charset=utf-8"


def test_invalid_parameters_are_named_but_not_echoed() -> None:
    answer = routes().resolve(event("GET /hello", {"name": "<script>-too-long"}))

    assert answer["statusCode"] == 400
    assert "invalid value for: name." in answer["body"]
    assert "<script>" not in answer["body"]


def test_a_broker_error_shows_its_page_and_status() -> None:
    answer = routes().resolve(event("GET /hello", {"name": "gone"}))

    assert answer["statusCode"] == 410
    assert "This connect link has expired." in answer["body"]


def test_an_unexpected_error_shows_a_500_page_without_the_trace() -> None:
    answer = routes().resolve(event("GET /hello", {"name": "boom"}))

    assert answer["statusCode"] == 500
    assert "a bug" not in answer["body"]

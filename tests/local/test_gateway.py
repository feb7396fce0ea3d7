"""broker_local.gateway: real HTTP in, API Gateway payload format 2.0 events to handlers, HTTP back out."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

from broker_local.functions import http_routes
from broker_local.gateway import LocalApiGateway

ECHO = """
import json

import helpers


def handler(event, context):
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json", "x-helper": helpers.NAME},
        "cookies": ["seen=1; Path=/; HttpOnly", "other=2"],
        "body": json.dumps({"event": event, "function_name": context.function_name,
                            "remaining": context.get_remaining_time_in_millis()}),
    }
"""

PLAIN = """
import helpers


def handler(event, context):
    return {"helper": helpers.NAME}
"""

BOOM = """
def handler(event, context):
    raise RuntimeError("the handler broke")
"""

BINARY = """
import base64


def handler(event, context):
    return {
        "statusCode": 201,
        "headers": {"content-type": "application/octet-stream"},
        "body": base64.b64encode(bytes(range(256))).decode(),
        "isBase64Encoded": True,
    }
"""


def _function(events: dict[str, Any], code_uri: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "CodeUri": code_uri,
            "Events": {
                name: {"Type": "HttpApi", "Properties": {"ApiId": {"Ref": "Api"}, **properties}}
                for name, properties in events.items()
            },
        },
    }


TEMPLATE: dict[str, Any] = {
    "Globals": {"Function": {"Handler": "app.handler"}},
    "Resources": {
        "Api": {"Type": "AWS::Serverless::HttpApi", "Properties": {"Auth": {"EnableIamAuthorizer": True}}},
        "EchoFunction": _function(
            {
                "GetItem": {"Method": "GET", "Path": "/items/{item_id}"},
                "PostItem": {"Method": "POST", "Path": "/items", "Auth": {"Authorizer": "AWS_IAM"}},
                "Files": {"Method": "ANY", "Path": "/files/{proxy+}"},
            },
            "functions/echo",
        ),
        "PlainFunction": _function(
            {
                "Plain": {"Method": "GET", "Path": "/plain"},
                "Special": {"Method": "GET", "Path": "/items/special"},
            },
            "functions/plain",
        ),
        "BoomFunction": _function({"Boom": {"Method": "GET", "Path": "/boom"}}, "functions/boom"),
        "BinaryFunction": _function({"Binary": {"Method": "GET", "Path": "/binary"}}, "functions/binary"),
    },
}


def _console(event: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 200, "headers": {"content-type": "text/html"}, "body": f"<p>{event['rawPath']}</p>"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    for folder, files in {
        "echo": {"app.py": ECHO, "helpers.py": 'NAME = "echo"\n'},
        "plain": {"app.py": PLAIN, "helpers.py": 'NAME = "plain"\n'},
        "boom": {"app.py": BOOM},
        "binary": {"app.py": BINARY},
    }.items():
        (root / "functions" / folder).mkdir(parents=True)
        for name, text in files.items():
            (root / "functions" / folder / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def gateway(project: Path) -> Iterator[LocalApiGateway]:
    with LocalApiGateway(
        http_routes(TEMPLATE), project, port=0, extra_routes={("GET", "/console"): _console}
    ) as running:
        yield running


@pytest.fixture
def client(gateway: LocalApiGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, timeout=10) as http:
        yield http


def _event(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    event: dict[str, Any] = answer.json()["event"]
    return event


def test_port_zero_names_the_free_port_in_the_base_url(gateway: LocalApiGateway) -> None:
    assert gateway.port != 0
    assert gateway.base_url == f"http://127.0.0.1:{gateway.port}"


def test_the_event_is_payload_format_2(client: httpx.Client, gateway: LocalApiGateway) -> None:
    # Given a path parameter and repeated query parameters, when calling, then the event is format 2.0.
    answer = client.get(
        "/items/a%20b?tag=x&tag=y&q=hello%20world&plus=a+b&empty=",
        headers={"X-Custom": "1", "User-Agent": "t/1"},
    )

    event = _event(answer)
    APIGatewayProxyEventV2Model.model_validate(event)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /items/{item_id}"
    assert event["rawPath"] == "/items/a%20b"
    assert event["rawQueryString"] == "tag=x&tag=y&q=hello%20world&plus=a+b&empty="
    assert event["pathParameters"] == {"item_id": "a b"}
    assert event["queryStringParameters"] == {"tag": "x,y", "q": "hello world", "plus": "a b", "empty": ""}
    assert event["headers"]["x-custom"] == "1"
    assert event["headers"]["host"] == f"127.0.0.1:{gateway.port}"
    assert event["headers"]["x-forwarded-proto"] == "http"
    assert "cookies" not in event
    assert "body" not in event
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"] == {
        "method": "GET",
        "path": "/items/a%20b",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "t/1",
    }
    assert context["stage"] == "$default"
    assert context["routeKey"] == "GET /items/{item_id}"
    assert context["domainName"] == f"127.0.0.1:{gateway.port}"
    assert context["accountId"] == "123456789012"
    assert isinstance(context["timeEpoch"], int)
    assert "authorizer" not in context
    assert answer.json()["function_name"] == "EchoFunction"
    assert 0 < answer.json()["remaining"] <= 15_000


def test_powertools_accessors_see_the_request(
    client: httpx.Client,
) -> None:
    event = APIGatewayProxyEventV2(_event(client.get("/items/42?a=1", headers={"Cookie": "sid=abc"})))

    assert event.path == "/items/42"
    assert event.http_method == "GET"
    assert event.path_parameters == {"item_id": "42"}
    assert event.get_query_string_value("a") == "1"
    assert event.resolved_cookies_field == {"sid": "abc"}


def test_cookies_arrive_as_a_list_and_set_cookie_comes_back_once_each(
    client: httpx.Client,
) -> None:
    answer = client.get("/items/1", headers={"Cookie": "a=1; b=2"})

    event = _event(answer)
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"]
    assert answer.headers.get_list("set-cookie") == ["seen=1; Path=/; HttpOnly", "other=2"]
    assert answer.headers["content-type"] == "application/json"


def test_an_iam_route_receives_the_body_and_a_local_iam_caller(
    client: httpx.Client,
) -> None:
    event = _event(client.post("/items", json={"name": "Acme"}))

    assert event["routeKey"] == "POST /items"
    assert json.loads(event["body"]) == {"name": "Acme"}
    assert event["isBase64Encoded"] is False
    assert event["headers"]["content-type"] == "application/json"
    assert event["requestContext"]["authorizer"]["iam"]["accountId"] == "123456789012"


def test_a_binary_body_arrives_base64_encoded(client: httpx.Client) -> None:
    payload = b"\xff\xfe\x00binary"

    event = _event(client.put("/files/a/b/c.bin", content=payload))

    assert event["routeKey"] == "ANY /files/{proxy+}"
    assert event["pathParameters"] == {"proxy": "a/b/c.bin"}
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_a_base64_response_comes_back_as_bytes(client: httpx.Client) -> None:
    answer = client.get("/binary")

    assert answer.status_code == 201
    assert answer.content == bytes(range(256))


def test_an_exact_route_wins_over_a_parameter_route(
    client: httpx.Client,
) -> None:
    answer = client.get("/items/special")

    assert answer.json() == {"helper": "plain"}


def test_functions_with_same_named_helpers_each_get_their_own(
    client: httpx.Client,
) -> None:
    assert client.get("/items/1").headers["x-helper"] == "echo"
    assert client.get("/plain").json() == {"helper": "plain"}
    assert client.get("/items/2").headers["x-helper"] == "echo"


def test_a_dict_without_status_code_is_a_200_json_answer(
    client: httpx.Client,
) -> None:
    answer = client.get("/plain")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"helper": "plain"}


@pytest.mark.parametrize(("method", "path"), [("GET", "/nowhere"), ("DELETE", "/items/1"), ("GET", "/items")])
def test_no_matching_route_is_api_gateways_404(client: httpx.Client, method: str, path: str) -> None:
    answer = client.request(method, path)

    assert answer.status_code == 404
    assert answer.json() == {"message": "Not Found"}


def test_a_raising_handler_answers_500_with_the_traceback_on_stderr(
    client: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = client.get("/boom")

    assert answer.status_code == 500
    assert answer.json() == {"message": "Internal Server Error"}
    error = capsys.readouterr().err
    assert "BoomFunction" in error
    assert "Traceback" in error
    assert "RuntimeError: the handler broke" in error


def test_an_extra_route_is_answered_by_its_callable(client: httpx.Client) -> None:
    answer = client.get("/console")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html"
    assert answer.text == "<p>/console</p>"


def test_each_request_logs_one_concise_line_naming_its_route_not_its_path(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A path parameter can be a secret (a connect link): the log shows the route it took instead."""
    with caplog.at_level(logging.INFO, logger="broker_local.gateway"):
        client.get("/plain")
        client.get("/items/secret-link-token")
        client.get("/nowhere/secret-link-token")

    lines = [record.getMessage() for record in caplog.records if record.name == "broker_local.gateway"]
    assert [line.rsplit(" ", 1)[0] for line in lines] == [
        "GET /plain 200",
        "GET /items/{item_id} 200",
        "GET (no route) 404",
    ]
    assert all(line.rsplit(" ", 1)[1].removesuffix("ms").isdigit() for line in lines)
    assert "secret-link-token" not in caplog.text


def test_a_chunked_body_arrives_whole(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": '
        yield b'"Acme"}'

    event = _event(client.post("/items", content=chunks(), headers={"content-type": "application/json"}))

    assert json.loads(event["body"]) == {"name": "Acme"}


def test_an_encoded_slash_stays_inside_its_path_parameter(client: httpx.Client) -> None:
    event = _event(client.get("/items/a%2Fb"))

    assert event["rawPath"] == "/items/a%2Fb"
    assert event["pathParameters"] == {"item_id": "a/b"}


def test_head_answers_the_headers_without_a_body(client: httpx.Client) -> None:
    answer = client.head("/files/report.txt")

    assert answer.status_code == 200
    assert answer.headers["x-helper"] == "echo"
    assert answer.content == b""

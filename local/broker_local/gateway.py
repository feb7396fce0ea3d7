"""A local stand-in for API Gateway's HTTP API, serving template.yaml's routes with the real handlers.

Each request becomes the exact payload format 2.0 event API Gateway would send, goes to the very Lambda
handler that SAM deploys, and the handler's answer is turned back into HTTP the way API Gateway does it.
No authorizer runs: routes marked AWS_IAM need no signature locally (the caller is a fixed local IAM
identity in the event), which is what makes the admin API easy to poke at from a browser or curl.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, PathConverter, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response as HttpResponse

from broker_local.functions import Route
from broker_local.template import ACCOUNT_ID

logger = logging.getLogger(__name__)

# Sent by local clients whose requests serve another one (the console reading the admin API).
INTERNAL_HEADER = "X-Broker-Local-Internal"

Event = dict[str, Any]
Response = dict[str, Any]
ExtraRoute = Callable[[Event], Response]
Handler = Callable[[Event, Any], Any]

_NOT_FOUND = (404, {"message": "Not Found"})
_INTERNAL_ERROR = (500, {"message": "Internal Server Error"})
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}
_LAMBDA_TIMEOUT_MS = 15_000  # the template's Globals.Function.Timeout; only reported, not enforced


# --------------------------------------------------------------------------------------------------
# Routing: Werkzeug's matcher tries exact segments before {param} before {proxy+}, as API Gateway does;
# a method beats ANY (rules with a method come first), and $default catches whatever is left.

_GREEDY = re.compile(r"\{(\w+)\+\}")
_PARAMETER = re.compile(r"\{(\w+)\}")


class _GreedyConverter(PathConverter):
    """{proxy+}: the rest of the path, slashes included, when it holds more than slashes."""

    regex = r".*?[^/].*?"


def _route_map(routes: Sequence[tuple[str, str, Any]]) -> Map:
    """(method, path, endpoint) as Werkzeug rules, matched against the raw path (so %2F stays inside its
    segment); ANY is every method, and a GET route answers no HEAD (Werkzeug's default would)."""
    rules = []
    for method, path, endpoint in sorted(routes, key=lambda route: route[0] == "ANY"):
        rule = Rule(_PARAMETER.sub(r"<\1>", _GREEDY.sub(r"<greedy:\1>", path)), endpoint=endpoint)
        rule.methods = None if method == "ANY" else {method}
        rules.append(rule)
    return Map(rules, merge_slashes=False, converters={"greedy": _GreedyConverter})


def _match(routes: Map, method: str, path: str) -> tuple[Any, dict[str, str]] | None:
    """The endpoint and decoded path parameters of the route the request takes, or None."""
    if path.startswith("//"):
        return None  # Werkzeug would drop the empty first segment, API Gateway matches none with it
    try:
        endpoint, parameters = routes.bind("local").match(path, method)
    except HTTPException:  # NotFound, MethodNotAllowed
        return None
    return endpoint, {name: unquote(value) for name, value in parameters.items()}


# --------------------------------------------------------------------------------------------------
# Handlers: loaded from the function's folder like the Lambda runtime does, one instance per function.


@dataclass
class LambdaContext:
    """What the Python Lambda runtime passes as `context`, with the fields Powertools reads."""

    function_name: str
    invoked_function_arn: str
    log_group_name: str
    log_stream_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    identity: Any = None
    client_context: Any = None
    tenant_id: str | None = None
    _deadline: float = field(default_factory=lambda: time.monotonic() + _LAMBDA_TIMEOUT_MS / 1000)

    @classmethod
    def for_function(cls, function_id: str) -> LambdaContext:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        today = datetime.now(UTC).strftime("%Y/%m/%d")
        return cls(
            function_name=function_id,
            invoked_function_arn=f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_id}",
            log_group_name=f"/aws/lambda/{function_id}",
            log_stream_name=f"{today}/[$LATEST]{uuid.uuid4().hex}",
        )

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class _Function:
    handler: Handler
    # Lambda never runs two events at once in one instance; module-level state (Powertools' resolver
    # keeps current_event on the app) relies on that, so each function serves one request at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)


# sys.path and sys.modules are process-wide: imports of function code happen one at a time.
_IMPORT_LOCK = threading.Lock()


def import_handler(route: Route, project_root: Path) -> Handler:
    """Import <CodeUri>/<module>.py under a name unique to the function, with its folder importable."""
    module_path, _, attribute = route.handler.rpartition(".")
    if not module_path or not attribute:
        raise ValueError(f"{route.function_id}: Handler {route.handler!r} is not 'module.function'")
    folder = (project_root / route.code_uri).resolve()
    source = folder / (module_path.replace(".", "/") + ".py")
    unique = f"lambda_{route.function_id}_{module_path.replace('.', '_')}"
    spec = importlib.util.spec_from_file_location(unique, source)
    if spec is None or spec.loader is None:
        raise ImportError(f"{route.function_id}: cannot load {source}")
    with _IMPORT_LOCK:
        before = set(sys.modules)
        sys.path.insert(0, str(folder))
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[unique]
            raise
        finally:
            sys.path.remove(str(folder))
            _rename_siblings(set(sys.modules) - before - {unique}, folder, route.function_id)
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise ImportError(f"{route.function_id}: {source} has no callable {attribute!r}")
    return handler  # type: ignore[no-any-return]


def _rename_siblings(names: set[str], folder: Path, function_id: str) -> None:
    """Move the function's own helper modules out of the shared namespace.

    Two functions may each ship a helpers.py; in Lambda they never meet, here they would share one
    sys.modules entry. The loaded module objects stay referenced by the function's code.
    """
    for name in names:
        module: ModuleType | None = sys.modules.get(name)
        location = getattr(module, "__file__", None)
        if location and Path(location).resolve().is_relative_to(folder):
            sys.modules[f"lambda_{function_id}_{name}"] = sys.modules.pop(name)


# --------------------------------------------------------------------------------------------------
# Events and responses, payload format 2.0.


def _comma_joined(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def raw_path(request: Request) -> str:
    """RAW_URI is the path as sent, percent-encoding kept: API Gateway's rawPath, and what routing matches
    (so %2F stays inside its segment)."""
    return str(request.environ.get("RAW_URI") or request.path).partition("?")[0]


def build_event(
    request: Request, route_key: str, path_parameters: Mapping[str, str], auth: str | None
) -> Event:
    """The payload format 2.0 event API Gateway sends for this request."""
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    path = raw_path(request)
    query = request.query_string.decode("latin-1")
    body = request.get_data()
    source_ip = request.remote_addr or "127.0.0.1"
    port = request.environ["SERVER_PORT"]
    received = [(name.lower(), value) for name, value in request.headers.items()]
    cookies = [
        part.strip()
        for name, value in received
        if name == "cookie"
        for part in value.split(";")
        if part.strip()
    ]
    headers = _comma_joined([(name, value) for name, value in received if name != "cookie"])
    headers.setdefault("host", f"{request.environ['SERVER_NAME']}:{port}")
    forwarded_for = headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = f"{forwarded_for}, {source_ip}" if forwarded_for else source_ip
    headers.setdefault("x-forwarded-port", str(port))
    headers.setdefault("x-forwarded-proto", "http")
    headers.setdefault("x-amzn-trace-id", f"Root=1-{int(now.timestamp()):08x}-{uuid.uuid4().hex[:24]}")
    domain = headers["host"]
    context: dict[str, Any] = {
        "accountId": ACCOUNT_ID,
        "apiId": "local",
        "domainName": domain,
        "domainPrefix": domain.split(":", 1)[0].split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": f"{now:%d/%b/%Y:%H:%M:%S} +0000",  # %b is English: Python leaves LC_TIME at "C"
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if auth == "AWS_IAM":
        context["authorizer"] = {
            "iam": {
                "accessKey": "AKIALOCALGATEWAY0000",
                "accountId": ACCOUNT_ID,
                "callerId": "AIDALOCALGATEWAY0000",
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": f"arn:aws:iam::{ACCOUNT_ID}:user/local",
                "userId": "AIDALOCALGATEWAY0000",
            }
        }
    event: Event = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if query:
        event["queryStringParameters"] = _comma_joined(parse_qsl(query, keep_blank_values=True))
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    event["requestContext"] = context
    if body:
        try:
            event["body"] = body.decode("utf-8")
            event["isBase64Encoded"] = False
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


def _json(status: int, document: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", "application/json")], json.dumps(document).encode()


def to_http(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body from a handler's answer, as API Gateway reads format 2.0 responses."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # No statusCode: API Gateway assumes 200 with the answer as a JSON body (a string as it is).
        inferred = result if isinstance(result, str) else json.dumps(result)
        return 200, [("Content-Type", "application/json")], inferred.encode()
    status = int(result["statusCode"])
    if not 100 <= status <= 599:
        raise ValueError(f"statusCode {status} is not an HTTP status")
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), str(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        single = {existing.lower() for existing, _ in headers}
        if str(name).lower() not in single:
            headers.extend((str(name), str(value)) for value in values)
    headers.extend(("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or [])
    body: object = result.get("body")
    if body is None:
        payload = b""
    elif not isinstance(body, str):
        raise TypeError(f"body must be a string, got {type(body).__name__}")
    elif result.get("isBase64Encoded"):
        payload = base64.b64decode(body)
    else:
        payload = body.encode()
    return status, headers, payload


# --------------------------------------------------------------------------------------------------
# The server.


class _QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without its own access log: the gateway logs one line per request itself."""

    # Headers and body go out in two writes: with Nagle on, the body waits for the client's delayed ACK
    # (about 40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class LocalApiGateway:
    """API Gateway (HTTP API, $default stage) on a local port, in a daemon thread.

    Routes come from template.yaml (see template.http_routes); extra_routes add local-only pages, keyed
    by (method, path), that take the same event and answer the same way as a handler. An extra route's
    path is exact, or has {param} segments matched like a template route's (their values arrive as
    pathParameters). Extra routes are looked up before the template's routes.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        project_root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        extra_routes: Mapping[tuple[str, str], ExtraRoute] | None = None,
    ) -> None:
        self.routes = list(routes)
        self.project_root = Path(project_root)
        self.host = host
        self.port = port
        self._extra_routes = _route_map(
            [
                (method.upper(), path, (f"{method.upper()} {path}", call))
                for (method, path), call in (extra_routes or {}).items()
            ]
        )
        self._routes = _route_map(
            [(route.method, route.path, route) for route in self.routes if route.path != "$default"]
        )
        self._default = next((route for route in self.routes if route.path == "$default"), None)
        self._functions: dict[str, _Function] = {}
        self._functions_lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LocalApiGateway:
        if self._server is not None:
            return self
        server = make_server(
            self.host, self.port, self._wsgi, threaded=True, request_handler=_QuietRequestHandler
        )
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"local-apigw-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> LocalApiGateway:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        """Werkzeug serves HTTP (keep-alive, chunked bodies); this maps each request to payload 2.0."""
        started = time.perf_counter()
        request = Request(environ)
        route_key, (status, headers, body) = self.handle(request)
        response = HttpResponse(body, status=status)
        response.headers.clear()
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                response.headers.add(name, value)
        # The console's own calls to the admin API are part of the page a person asked for: DEBUG.
        level = logging.DEBUG if request.headers.get(INTERNAL_HEADER) else logging.INFO
        # The route, not the path: a connect link in the path is a bearer secret (and the deployed access
        # log records no path either).
        logger.log(level, "%s %d %.0fms", route_key, status, (time.perf_counter() - started) * 1000)
        return response(environ, start_response)

    def handle(self, request: Request) -> tuple[str, tuple[int, list[tuple[str, str]], bytes]]:
        """Route one request and answer it, with the route key it took; never raises (failures become
        API Gateway's 500)."""
        path = raw_path(request)
        extra = _match(self._extra_routes, request.method, path)
        if extra is not None:
            (route_key, call), path_parameters = extra
            event = build_event(request, route_key, path_parameters, None)
            return route_key, self._answer("extra route " + route_key, lambda: call(event))
        found = _match(self._routes, request.method, path)
        if found is None and self._default is not None:
            found = self._default, {}
        if found is None:
            return f"{request.method} (no route)", _json(*_NOT_FOUND)
        route, parameters = found
        route_key = "$default" if route.path == "$default" else f"{route.method} {route.path}"
        event = build_event(request, route_key, parameters, route.auth)
        return route_key, self._answer(route.function_id, lambda: self._invoke(route, event))

    def _invoke(self, route: Route, event: Event) -> Any:
        function = self._function(route)
        with function.lock:
            return function.handler(event, LambdaContext.for_function(route.function_id))

    def _function(self, route: Route) -> _Function:
        with self._functions_lock:
            loaded = self._functions.get(route.function_id)
            if loaded is None:
                loaded = _Function(import_handler(route, self.project_root))
                self._functions[route.function_id] = loaded
            return loaded

    @staticmethod
    def _answer(name: str, call: Callable[[], Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            return to_http(call())
        except Exception as error:
            # Where Lambda would write to CloudWatch; the caller only learns that it failed.
            lines = traceback.format_exception(error)
            print(
                f"[ERROR] {name}: {type(error).__name__}: {error}\n{''.join(lines)}", file=sys.stderr, end=""
            )
            return _json(*_INTERNAL_ERROR)

"""The functions of template.yaml as SAM wires them: environment, HTTP routes, schedules, queue sources.

The local runner, the tests and the benchmarks take these from the template itself, so they invoke the
same handlers with the same environment and events as a deployed stack.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from broker_local.template import Stack, flag, resolve, scalar_str


def _globals_function(template: Mapping[str, Any]) -> dict[str, Any]:
    return dict((template.get("Globals") or {}).get("Function") or {})


def _function_properties(template: Mapping[str, Any], function_logical_id: str) -> dict[str, Any]:
    resource = (template.get("Resources") or {}).get(function_logical_id)
    if not resource or resource.get("Type") not in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
        raise ValueError(f"{function_logical_id} is not a function of the template")
    return dict(resource.get("Properties") or {})


def function_environment(template: dict[str, Any], stack: Stack, function_logical_id: str) -> dict[str, str]:
    """The environment the function gets when deployed: Globals merged with its own variables, resolved."""
    own = (_function_properties(template, function_logical_id).get("Environment") or {}).get("Variables")
    shared = (_globals_function(template).get("Environment") or {}).get("Variables")
    merged = {**(resolve(shared or {}, stack) or {}), **(resolve(own or {}, stack) or {})}
    return {str(name): scalar_str(value) for name, value in merged.items()}


def functions_environment(template: dict[str, Any], stack: Stack) -> dict[str, str]:
    """Every function's variables in one environment: the local runner serves them all in one process
    (and env.json gives them all to sam local), so they must agree."""
    merged: dict[str, str] = {}
    for function_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for name, value in function_environment(template, stack, function_id).items():
            if merged.setdefault(name, value) != value:
                raise RuntimeError(
                    f"{name} differs between functions; the local runner shares one environment"
                )
    return merged


@dataclass(frozen=True)
class Route:
    """One HttpApi event of a function: what API Gateway would route to it."""

    method: str  # GET, POST, …, or ANY
    path: str  # "/connect/{link}", "/{proxy+}" or "$default"
    function_id: str
    code_uri: str  # "functions/start", relative to the template's folder
    handler: str  # "app.handler"
    auth: str | None  # "AWS_IAM", another authorizer's name, or None when public


def _function_code(
    template: Mapping[str, Any], function_id: str, properties: Mapping[str, Any]
) -> tuple[str, str]:
    shared = _globals_function(template)
    code_uri, handler = (
        properties.get("CodeUri", shared.get("CodeUri")),
        properties.get("Handler", shared.get("Handler")),
    )
    if not isinstance(code_uri, str) or not isinstance(handler, str):
        raise ValueError(f"{function_id} needs a local CodeUri and a Handler to run locally")
    return code_uri, handler


def _default_authorizer(template: Mapping[str, Any], api_id: Any) -> str | None:
    shared = dict(((template.get("Globals") or {}).get("HttpApi") or {}).get("Auth") or {})
    if isinstance(api_id, dict) and isinstance(api_id.get("Ref"), str):
        api = (template.get("Resources") or {}).get(api_id["Ref"]) or {}
        shared.update((api.get("Properties") or {}).get("Auth") or {})
    default = shared.get("DefaultAuthorizer")
    return str(default) if default else None


def _events(template: Mapping[str, Any], kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(function id, event id, event properties) of every `kind` event of every AWS::Serverless::Function,
    in template order."""
    for function_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            for event_id, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
                if event.get("Type") == kind:
                    yield function_id, event_id, dict(event.get("Properties") or {})


def http_routes(template: dict[str, Any]) -> list[Route]:
    """Every HttpApi event of every AWS::Serverless::Function, in template order."""
    routes: list[Route] = []
    for function_id, _, event_properties in _events(template, "HttpApi"):
        properties = template["Resources"][function_id].get("Properties") or {}
        code_uri, handler = _function_code(template, function_id, properties)
        method = str(event_properties.get("Method", "ANY")).upper()
        if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
            method = "ANY"
        path = str(event_properties.get("Path", "$default"))
        authorizer = (event_properties.get("Auth") or {}).get("Authorizer")
        if authorizer is None:
            authorizer = _default_authorizer(template, event_properties.get("ApiId"))
        auth = None if authorizer in (None, "NONE") else str(authorizer)
        routes.append(Route(method, path, function_id, code_uri, handler, auth))
    return routes


@dataclass(frozen=True)
class Schedule:
    """One Schedule event: which function runs, and when."""

    function_id: str
    event_id: str
    expression: str  # "rate(5 minutes)" or "cron(…)"
    enabled: bool
    input: str | None  # the event's fixed JSON input, if any


def schedules(template: dict[str, Any], stack: Stack | None = None) -> list[Schedule]:
    """Every Schedule event; intrinsics in them are resolved when a stack is given."""
    found: list[Schedule] = []
    for function_id, event_id, properties in _events(template, "Schedule"):
        if stack is not None:
            properties = resolve(properties, stack) or {}
        expression = properties.get("Schedule")
        enabled = flag(properties.get("Enabled"), default=True)
        if not isinstance(expression, str):
            raise ValueError(f"{function_id}.{event_id}: the schedule expression is not a plain string")
        payload = properties.get("Input")
        found.append(
            Schedule(function_id, event_id, expression, enabled, None if payload is None else str(payload))
        )
    return found


def function_entry(template: dict[str, Any], function_id: str) -> Route:
    """The function's code as a Route with no HTTP side, for invoking it from a schedule or a queue."""
    properties = (template.get("Resources") or {})[function_id].get("Properties") or {}
    code_uri, handler = _function_code(template, function_id, properties)
    return Route("INVOKE", "", function_id, code_uri, handler, None)


@dataclass(frozen=True)
class QueueSource:
    """One SQS event source: the function, the queue it reads and how many messages a batch holds."""

    function_id: str
    queue_url: str
    batch_size: int


def queue_sources(template: dict[str, Any], stack: Stack) -> list[QueueSource]:
    """Every SQS event whose queue was provisioned locally (its Queue is a GetAtt of a queue's Arn)."""
    found: list[QueueSource] = []
    for function_id, _, properties in _events(template, "SQS"):
        queue = properties.get("Queue")
        if not (isinstance(queue, dict) and "Fn::GetAtt" in queue):
            continue
        logical_id = queue["Fn::GetAtt"][0]
        found.append(
            QueueSource(function_id, stack.physical_ids[logical_id], int(properties.get("BatchSize", 10)))
        )
    return found

"""template.yaml as the single source of truth for everything that runs locally.

Tests and the local runner create tables, secrets and queues from the template itself, and take the HTTP
routes and function environments from it too, so a local run cannot drift from what SAM deploys.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import ClientError

ACCOUNT_ID = "123456789012"
"""The account id moto uses by default, so ARNs built here match the ones moto returns."""

DEFAULT_STACK_NAME = "zoho-broker-local"
DEFAULT_REGION = "us-east-1"

# --------------------------------------------------------------------------------------------------
# Loading: CloudFormation's short-form tags become the long form, which is what resolve() understands.


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader plus the CloudFormation tags; a subclass so the process-wide SafeLoader stays untouched."""


# CloudFormation reads unquoted dates such as 2010-09-09 as strings, not datetime.date. The dict is copied
# so the change stays on the subclass.
_CfnLoader.yaml_implicit_resolvers = {
    first: [entry for entry in resolvers if entry[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_any(loader: Any, node: Any) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _long_form(function: str) -> Callable[[Any, Any], dict[str, Any]]:
    def construct(loader: Any, node: Any) -> dict[str, Any]:
        return {function: _construct_any(loader, node)}

    return construct


def _construct_get_att(loader: Any, node: Any) -> dict[str, Any]:
    value = _construct_any(loader, node)
    if isinstance(value, str):
        # "Resource.Attribute", where the attribute may itself contain dots (Endpoint.Address).
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {"Fn::GetAtt": value}


for _tag in (
    "And",
    "Base64",
    "Cidr",
    "Equals",
    "FindInMap",
    "GetAZs",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
):
    _CfnLoader.add_constructor(f"!{_tag}", _long_form(f"Fn::{_tag}"))
_CfnLoader.add_constructor("!Ref", _long_form("Ref"))
_CfnLoader.add_constructor("!Condition", _long_form("Condition"))
_CfnLoader.add_constructor("!GetAtt", _construct_get_att)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template, short-form tags included."""
    with path.open(encoding="utf-8") as stream:
        document = yaml.load(stream, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a CloudFormation template (top level is not a mapping)")
    return document


# --------------------------------------------------------------------------------------------------
# The stack: what resolve() needs to turn intrinsics into values.


@dataclass
class Stack:
    """A locally provisioned stack: parameter values and the physical ids and attributes of its resources."""

    name: str
    region: str
    account_id: str = ACCOUNT_ID
    parameters: dict[str, str] = field(default_factory=dict)
    physical_ids: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    # Kept for Conditions, Mappings, parameter types and telling "not local" from "unknown" refs.
    template: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_template(
        cls,
        template: Mapping[str, Any],
        *,
        stack_name: str = DEFAULT_STACK_NAME,
        parameters: Mapping[str, str] | None = None,
        region: str = DEFAULT_REGION,
    ) -> Stack:
        """A stack with parameters resolved (given value, else Default) and no resources yet."""
        declared: dict[str, Any] = dict(template.get("Parameters") or {})
        given = dict(parameters or {})
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise ValueError(f"Parameters not declared in the template: {', '.join(unknown)}")
        values: dict[str, str] = {}
        for name, spec in declared.items():
            spec = spec or {}
            if name in given:
                value = str(given[name])
            elif "Default" in spec:
                value = _scalar_str(spec["Default"])
            else:
                raise ValueError(f"Parameter {name} has no Default and no value was given")
            allowed = spec.get("AllowedValues")
            if allowed is not None and value not in [_scalar_str(item) for item in allowed]:
                raise ValueError(f"Parameter {name}={value!r} is not one of {allowed}")
            values[name] = value
        return cls(name=stack_name, region=region, parameters=values, template=dict(template))


# --------------------------------------------------------------------------------------------------
# Intrinsic functions.


class _NoValue:
    """Marks AWS::NoValue while resolving, so the enclosing key or list item can be dropped."""


_NO_VALUE = _NoValue()
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def resolve(value: Any, stack: Stack) -> Any:
    """Replace every intrinsic function in value by its local value (AWS::NoValue at the top gives None)."""
    result = _resolve(value, stack)
    return None if result is _NO_VALUE else result


def _resolve(value: Any, stack: Stack) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return _ref(argument, stack)
            if isinstance(key, str) and key.startswith("Fn::"):
                return _function(key, argument, stack)
        resolved_dict = {}
        for key, item in value.items():
            resolved = _resolve(item, stack)
            if resolved is not _NO_VALUE:
                resolved_dict[key] = resolved
        return resolved_dict
    if isinstance(value, list):
        return [resolved for item in value if (resolved := _resolve(item, stack)) is not _NO_VALUE]
    return value


def _pseudo_parameters(stack: Stack) -> dict[str, Any]:
    return {
        "AWS::StackName": stack.name,
        "AWS::Region": stack.region,
        "AWS::AccountId": stack.account_id,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackId": (
            f"arn:aws:cloudformation:{stack.region}:{stack.account_id}:stack/{stack.name}/"
            "00000000-0000-0000-0000-000000000000"
        ),
        "AWS::NotificationARNs": [],
    }


def _ref(name: Any, stack: Stack) -> Any:
    if not isinstance(name, str):
        raise ValueError(f"Ref needs a name, got {name!r}")
    if name == "AWS::NoValue":
        return _NO_VALUE
    pseudo = _pseudo_parameters(stack)
    if name in pseudo:
        return pseudo[name]
    if name in stack.parameters:
        value = stack.parameters[name]
        kind = str(((stack.template.get("Parameters") or {}).get(name) or {}).get("Type", "String"))
        if kind == "CommaDelimitedList" or kind.startswith("List<"):
            return [item.strip() for item in value.split(",")] if value else []
        return value
    if name in stack.physical_ids:
        return stack.physical_ids[name]
    if name in (stack.template.get("Resources") or {}):
        return ""  # in the template but not provisioned locally (HttpApi, layers, functions, …)
    raise ValueError(f"Ref to {name!r}, which is neither a parameter nor a resource of the template")


def _get_att(resource: str, attribute: str, stack: Stack) -> Any:
    if resource in stack.attributes:
        attributes = stack.attributes[resource]
        if attribute not in attributes:
            raise ValueError(
                f"{resource} has no attribute {attribute!r} locally (known: {sorted(attributes)})"
            )
        return attributes[attribute]
    if resource in (stack.template.get("Resources") or {}):
        return ""
    raise ValueError(f"Fn::GetAtt of {resource!r}, which is not a resource of the template")


def _sub(argument: Any, stack: Stack) -> str:
    if isinstance(argument, list):
        text, variables = argument[0], _resolve(argument[1] if len(argument) > 1 else {}, stack)
    else:
        text, variables = argument, {}
    if not isinstance(text, str) or not isinstance(variables, dict):
        raise ValueError(f"Fn::Sub needs a string or [string, mapping], got {argument!r}")

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        name = name.strip()
        if name in variables:
            return _scalar_str(variables[name])
        if "." in name and not name.startswith("AWS::"):
            resource, _, attribute = name.partition(".")
            return _scalar_str(_get_att(resource, attribute, stack))
        return _scalar_str(_ref(name, stack))

    return _SUB_VARIABLE.sub(replace, text)


def _condition(name: Any, stack: Stack) -> bool:
    conditions = stack.template.get("Conditions") or {}
    if not isinstance(name, str) or name not in conditions:
        raise ValueError(f"Unknown condition {name!r}")
    return _truth(conditions[name], stack)


def _truth(value: Any, stack: Stack) -> bool:
    if isinstance(value, dict) and len(value) == 1 and "Condition" in value:
        return _condition(value["Condition"], stack)
    result = _resolve(value, stack)
    if isinstance(result, bool):
        return result
    if isinstance(result, str) and result.lower() in ("true", "false"):
        return result.lower() == "true"
    raise ValueError(f"A condition must be true or false, got {result!r}")


def _function(name: str, argument: Any, stack: Stack) -> Any:
    match name:
        case "Fn::Sub":
            return _sub(argument, stack)
        case "Fn::GetAtt":
            parts = _resolve(argument, stack)
            if isinstance(parts, str):
                parts = parts.split(".", 1)
            return _get_att(str(parts[0]), str(parts[1]), stack)
        case "Fn::Join":
            delimiter, items = argument
            return str(delimiter).join(_scalar_str(item) for item in _resolve(items, stack))
        case "Fn::Select":
            index, items = _resolve(argument, stack)
            return items[int(index)]
        case "Fn::Split":
            delimiter, text = _resolve(argument, stack)
            return str(text).split(str(delimiter))
        case "Fn::If":
            condition, if_true, if_false = argument
            return _resolve(if_true if _condition(condition, stack) else if_false, stack)
        case "Fn::Equals":
            left, right = _resolve(argument, stack)
            return _scalar_str(left) == _scalar_str(right)
        case "Fn::Not":
            return not _truth(argument[0], stack)
        case "Fn::And":
            return all(_truth(item, stack) for item in argument)
        case "Fn::Or":
            return any(_truth(item, stack) for item in argument)
        case "Fn::FindInMap":
            map_name, first, second = _resolve(argument[:3], stack)
            return (stack.template.get("Mappings") or {})[map_name][first][second]
        case "Fn::Base64":
            return base64.b64encode(str(_resolve(argument, stack)).encode()).decode()
        case "Fn::ImportValue":
            return ""  # other stacks' exports do not exist locally
        case "Fn::GetAZs":
            return [f"{stack.region}{zone}" for zone in "abc"]
        case "Fn::ToJsonString":
            return json.dumps(_resolve(argument, stack), separators=(",", ":"))
        case "Fn::Length":
            return len(_resolve(argument, stack))
        case _:
            raise ValueError(f"{name} is not supported by the local template resolver")


def _scalar_str(value: Any) -> str:
    """CloudFormation's string form of a scalar: booleans lower-case, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _flag(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


# --------------------------------------------------------------------------------------------------
# Provisioning.

_Provisioner = Callable[[str, dict[str, Any], Stack, boto3.session.Session], None]


def provision(
    template: dict[str, Any],
    *,
    stack_name: str = DEFAULT_STACK_NAME,
    parameters: Mapping[str, str] | None = None,
    session: boto3.session.Session | None = None,
) -> Stack:
    """Create the template's tables, secrets, queues, event buses and topics, in dependency order.

    Works under moto's mock_aws and against a moto server (AWS_ENDPOINT_URL). Resources that already
    exist are adopted, not replaced, so a restarted runner keeps its data and signing key.
    """
    session = session or boto3.session.Session()
    stack = Stack.from_template(
        template, stack_name=stack_name, parameters=parameters, region=session.region_name or DEFAULT_REGION
    )
    resources: dict[str, Any] = template.get("Resources") or {}
    local = {
        logical_id: resource
        for logical_id, resource in resources.items()
        if resource.get("Type") in _PROVISIONERS
        and ("Condition" not in resource or _condition(resource["Condition"], stack))
    }
    for logical_id in _dependency_order(local):
        resource = local[logical_id]
        properties = resolve(resource.get("Properties") or {}, stack) or {}
        _PROVISIONERS[resource["Type"]](logical_id, properties, stack, session)
    return stack


def _references(value: Any) -> Iterator[str]:
    """Logical ids that value points at through Ref, Fn::GetAtt or Fn::Sub."""
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
        return
    if not isinstance(value, dict):
        return
    for key, argument in value.items():
        if key == "Ref" and isinstance(argument, str):
            yield argument
        elif key == "Fn::GetAtt":
            target = argument.split(".", 1)[0] if isinstance(argument, str) else argument[0]
            if isinstance(target, str):
                yield target
        elif key == "Fn::Sub":
            text, variables = (argument[0], argument[1:]) if isinstance(argument, list) else (argument, [])
            names = {name for mapping in variables if isinstance(mapping, dict) for name in mapping}
            for match in _SUB_VARIABLE.finditer(text if isinstance(text, str) else ""):
                variable = match.group(1).strip()
                if not variable.startswith("!") and variable not in names:
                    yield variable.split(".", 1)[0]
            yield from _references(variables)
        else:
            yield from _references(argument)


def _dependency_order(resources: Mapping[str, Any]) -> list[str]:
    """Template order, except that every resource comes after the ones it references."""
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in ordered:
            return
        if logical_id in visiting:
            raise ValueError(f"Circular reference involving {logical_id}")
        visiting.add(logical_id)
        resource = resources[logical_id]
        depends_on = resource.get("DependsOn") or []
        depends_on = [depends_on] if isinstance(depends_on, str) else depends_on
        for target in [*_references(resource.get("Properties") or {}), *depends_on]:
            if target in resources and target != logical_id:
                visit(target)
        visiting.discard(logical_id)
        ordered.append(logical_id)

    for logical_id in resources:
        visit(logical_id)
    return ordered


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _tags(properties: Mapping[str, Any]) -> list[dict[str, str]]:
    return [
        {"Key": str(tag["Key"]), "Value": _scalar_str(tag["Value"])} for tag in properties.get("Tags") or []
    ]


def _create_table(
    logical_id: str, properties: dict[str, Any], stack: Stack, session: boto3.session.Session
) -> None:
    client = session.client("dynamodb")
    name = str(properties.get("TableName") or f"{stack.name}-{logical_id}")
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    for key in ("ProvisionedThroughput", "LocalSecondaryIndexes", "TableClass", "OnDemandThroughput"):
        if key in properties:
            request[key] = properties[key]
    if "DeletionProtectionEnabled" in properties:
        request["DeletionProtectionEnabled"] = _flag(properties["DeletionProtectionEnabled"])
    if "GlobalSecondaryIndexes" in properties:
        # CloudFormation-only keys (ContributorInsightsSpecification) are not part of CreateTable.
        request["GlobalSecondaryIndexes"] = [
            {key: value for key, value in index.items() if key != "ContributorInsightsSpecification"}
            for index in properties["GlobalSecondaryIndexes"]
        ]
    stream = properties.get("StreamSpecification")
    if stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    sse = properties.get("SSESpecification")
    if sse:
        request["SSESpecification"] = {"Enabled": _flag(sse.get("SSEEnabled"))} | {
            key: sse[key] for key in ("SSEType", "KMSMasterKeyId") if key in sse
        }
    if tags := _tags(properties):
        request["Tags"] = tags
    try:
        description = client.create_table(**request)["TableDescription"]
    except ClientError as error:
        if _error_code(error) != "ResourceInUseException":
            raise
        description = client.describe_table(TableName=name)["Table"]
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    ttl = properties.get("TimeToLiveSpecification")
    if ttl and _flag(ttl.get("Enabled")):
        current = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": str(ttl["AttributeName"])},
            )
    recovery = properties.get("PointInTimeRecoverySpecification")
    if recovery and _flag(recovery.get("PointInTimeRecoveryEnabled")):
        client.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )

    stack.physical_ids[logical_id] = name
    attributes = {"Arn": str(description["TableArn"])}
    if description.get("LatestStreamArn"):
        attributes["StreamArn"] = str(description["LatestStreamArn"])
    stack.attributes[logical_id] = attributes


def generate_secret_string(spec: Mapping[str, Any]) -> str:
    """A value the way Secrets Manager's GenerateSecretString makes one, from the `secrets` module."""
    length = int(spec.get("PasswordLength", 32))
    excluded = set(str(spec.get("ExcludeCharacters", "")))
    groups = [
        group
        for group, exclude in (
            (string.ascii_lowercase, spec.get("ExcludeLowercase")),
            (string.ascii_uppercase, spec.get("ExcludeUppercase")),
            (string.digits, spec.get("ExcludeNumbers")),
            (string.punctuation, spec.get("ExcludePunctuation")),
            (" ", not _flag(spec.get("IncludeSpace"))),
        )
        if not _flag(exclude)
    ]
    groups = [remaining for group in groups if (remaining := "".join(c for c in group if c not in excluded))]
    if not groups:
        raise ValueError("GenerateSecretString excludes every character")
    alphabet = "".join(groups)
    required = groups if _flag(spec.get("RequireEachIncludedType"), default=True) else []
    if length < len(required):
        raise ValueError(f"PasswordLength {length} is too short for one character of each included type")
    characters = [secrets.choice(group) for group in required]
    characters += [secrets.choice(alphabet) for _ in range(length - len(characters))]
    secrets.SystemRandom().shuffle(characters)
    password = "".join(characters)

    template, key = spec.get("SecretStringTemplate"), spec.get("GenerateStringKey")
    if template is None and key is None:
        return password
    if template is None or key is None:
        raise ValueError("SecretStringTemplate and GenerateStringKey go together")
    document = json.loads(str(template))
    document[str(key)] = password
    return json.dumps(document)


def _create_secret(
    logical_id: str, properties: dict[str, Any], stack: Stack, session: boto3.session.Session
) -> None:
    client = session.client("secretsmanager")
    name = str(properties.get("Name") or f"{stack.name}/{logical_id}")
    request: dict[str, Any] = {"Name": name}
    if "SecretString" in properties:
        request["SecretString"] = str(properties["SecretString"])
    elif "GenerateSecretString" in properties:
        request["SecretString"] = generate_secret_string(properties["GenerateSecretString"])
    for key in ("Description", "KmsKeyId"):
        if key in properties:
            request[key] = str(properties[key])
    if tags := _tags(properties):
        request["Tags"] = tags
    try:
        arn = str(client.create_secret(**request)["ARN"])
    except ClientError as error:
        if _error_code(error) != "ResourceExistsException":
            raise
        arn = str(client.describe_secret(SecretId=name)["ARN"])  # keep the existing value (signing key)
    stack.physical_ids[logical_id] = arn
    stack.attributes[logical_id] = {"Arn": arn, "Id": arn, "Name": name}


_SQS_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)


def _create_queue(
    logical_id: str, properties: dict[str, Any], stack: Stack, session: boto3.session.Session
) -> None:
    client = session.client("sqs")
    fifo = _flag(properties.get("FifoQueue"))
    name = str(properties.get("QueueName") or f"{stack.name}-{logical_id}{'.fifo' if fifo else ''}")
    attributes = {key: _scalar_str(properties[key]) for key in _SQS_ATTRIBUTES if key in properties}
    if not fifo:
        attributes.pop("FifoQueue", None)  # SQS accepts the attribute only on FIFO queues
    request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if tags := _tags(properties):
        request["tags"] = {tag["Key"]: tag["Value"] for tag in tags}
    url = str(client.create_queue(**request)["QueueUrl"])
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.physical_ids[logical_id] = url
    stack.attributes[logical_id] = {"Arn": str(arn), "QueueName": name, "QueueUrl": url}


def _create_event_bus(
    logical_id: str, properties: dict[str, Any], stack: Stack, session: boto3.session.Session
) -> None:
    client: Any = session.client("events")
    name = str(properties["Name"])
    request: dict[str, Any] = {"Name": name}
    if "Description" in properties:
        request["Description"] = str(properties["Description"])
    if tags := _tags(properties):
        request["Tags"] = tags
    try:
        arn = str(client.create_event_bus(**request)["EventBusArn"])
    except ClientError as error:
        if _error_code(error) not in ("ResourceAlreadyExistsException", "ValidationException"):
            raise
        arn = str(client.describe_event_bus(Name=name)["Arn"])
    stack.physical_ids[logical_id] = name
    stack.attributes[logical_id] = {"Arn": arn, "Name": name}


def _create_topic(
    logical_id: str, properties: dict[str, Any], stack: Stack, session: boto3.session.Session
) -> None:
    client: Any = session.client("sns")
    fifo = _flag(properties.get("FifoTopic"))
    name = str(properties.get("TopicName") or f"{stack.name}-{logical_id}{'.fifo' if fifo else ''}")
    attributes = {
        key: _scalar_str(properties[key])
        for key in ("DisplayName", "FifoTopic", "ContentBasedDeduplication", "KmsMasterKeyId")
        if key in properties and (key != "FifoTopic" or fifo)
    }
    request: dict[str, Any] = {"Name": name, "Attributes": attributes}
    if tags := _tags(properties):
        request["Tags"] = tags
    arn = str(client.create_topic(**request)["TopicArn"])
    stack.physical_ids[logical_id] = arn
    stack.attributes[logical_id] = {"Arn": arn, "TopicArn": arn, "TopicName": name}


_PROVISIONERS: dict[str, _Provisioner] = {
    "AWS::DynamoDB::Table": _create_table,
    "AWS::SecretsManager::Secret": _create_secret,
    "AWS::SQS::Queue": _create_queue,
    "AWS::Events::EventBus": _create_event_bus,
    "AWS::SNS::Topic": _create_topic,
}


# --------------------------------------------------------------------------------------------------
# Functions: environment, HTTP routes and schedules, all read from the template.


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
    return {str(name): _scalar_str(value) for name, value in merged.items()}


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


def http_routes(template: dict[str, Any]) -> list[Route]:
    """Every HttpApi event of every AWS::Serverless::Function, in template order."""
    routes: list[Route] = []
    for function_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties") or {}
        for event in (properties.get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            code_uri, handler = _function_code(template, function_id, properties)
            event_properties = event.get("Properties") or {}
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
    """One Schedule/ScheduleV2 event: which function runs, and when."""

    function_id: str
    event_id: str
    expression: str  # "rate(5 minutes)" or "cron(…)"
    enabled: bool
    input: str | None  # the event's fixed JSON input, if any


def schedules(template: dict[str, Any], stack: Stack | None = None) -> list[Schedule]:
    """Every Schedule and ScheduleV2 event; intrinsics in them are resolved when a stack is given."""
    found: list[Schedule] = []
    for function_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event_id, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
            kind = event.get("Type")
            if kind not in ("Schedule", "ScheduleV2"):
                continue
            properties = event.get("Properties") or {}
            if stack is not None:
                properties = resolve(properties, stack) or {}
            if kind == "Schedule":
                expression = properties.get("Schedule")
            else:
                expression = properties.get("ScheduleExpression")
            if "State" in properties:
                enabled = str(properties["State"]).upper() == "ENABLED"
            else:
                enabled = _flag(properties.get("Enabled"), default=True)
            if not isinstance(expression, str):
                raise ValueError(f"{function_id}.{event_id}: the schedule expression is not a plain string")
            payload = properties.get("Input")
            found.append(
                Schedule(
                    function_id, event_id, expression, enabled, None if payload is None else str(payload)
                )
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
    for function_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") != "SQS":
                continue
            properties = event.get("Properties") or {}
            queue = properties.get("Queue")
            if not (isinstance(queue, dict) and "Fn::GetAtt" in queue):
                continue
            logical_id = queue["Fn::GetAtt"][0]
            found.append(
                QueueSource(function_id, stack.physical_ids[logical_id], int(properties.get("BatchSize", 10)))
            )
    return found

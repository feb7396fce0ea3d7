"""template.yaml as the single source of truth for everything that runs locally.

Tests and the local runner create tables, secrets and queues from the template itself, and take the HTTP
routes and function environments from it too, so a local run cannot drift from what SAM deploys.
"""

from __future__ import annotations

import graphlib
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


def _construct_tag(loader: Any, suffix: str, node: Any) -> dict[str, Any]:
    """!Ref and !Condition keep their names; every other !Tag is Fn::Tag, the long form resolve() reads."""
    value = _construct_any(loader, node)
    if suffix == "GetAtt" and isinstance(value, str):
        # "Resource.Attribute", where the attribute may itself contain dots (Endpoint.Address).
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


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
                value = scalar_str(spec["Default"])
            else:
                raise ValueError(f"Parameter {name} has no Default and no value was given")
            allowed = spec.get("AllowedValues")
            if allowed is not None and value not in [scalar_str(item) for item in allowed]:
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
        return stack.parameters[name]
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
    if not isinstance(argument, str):
        raise ValueError(f"Fn::Sub with a variable mapping is not supported locally, got {argument!r}")

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        name = name.strip()
        if "." in name and not name.startswith("AWS::"):
            resource, _, attribute = name.partition(".")
            return scalar_str(_get_att(resource, attribute, stack))
        return scalar_str(_ref(name, stack))

    return _SUB_VARIABLE.sub(replace, argument)


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
        case "Fn::If":
            condition, if_true, if_false = argument
            return _resolve(if_true if _condition(condition, stack) else if_false, stack)
        case "Fn::Equals":
            left, right = _resolve(argument, stack)
            return scalar_str(left) == scalar_str(right)
        case "Fn::Not":
            return not _truth(argument[0], stack)
        case _:
            raise ValueError(
                f"{name} is not supported locally: template.yaml did not use it when this resolver was "
                "written; add it to _function()"
            )


def scalar_str(value: Any) -> str:
    """CloudFormation's string form of a scalar: booleans lower-case, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def flag(value: Any, default: bool = False) -> bool:
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
    """Create the template's tables, secrets and queues, in dependency order.

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
        elif key == "Fn::Sub" and isinstance(argument, str):
            for match in _SUB_VARIABLE.finditer(argument):
                if not match.group(1).startswith("!"):
                    yield match.group(1).strip().split(".", 1)[0]
        else:
            yield from _references(argument)


def _dependency_order(resources: Mapping[str, Any]) -> list[str]:
    """Every resource after the ones it references (a cycle raises graphlib.CycleError)."""
    graph = {
        logical_id: {
            target for target in _references(resource.get("Properties") or {}) if target in resources
        }
        - {logical_id}
        for logical_id, resource in resources.items()
    }
    return list(graphlib.TopologicalSorter(graph).static_order())


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


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
    if "GlobalSecondaryIndexes" in properties:
        request["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
    sse = properties.get("SSESpecification")
    if sse:
        request["SSESpecification"] = {"Enabled": flag(sse.get("SSEEnabled"))} | {
            key: sse[key] for key in ("SSEType", "KMSMasterKeyId") if key in sse
        }
    try:
        description = client.create_table(**request)["TableDescription"]
    except ClientError as error:
        if _error_code(error) != "ResourceInUseException":
            raise
        description = client.describe_table(TableName=name)["Table"]
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    ttl = properties.get("TimeToLiveSpecification")
    if ttl and flag(ttl.get("Enabled")):
        current = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": str(ttl["AttributeName"])},
            )
    stack.physical_ids[logical_id] = name
    stack.attributes[logical_id] = {"Arn": str(description["TableArn"])}


def generate_secret_string(spec: Mapping[str, Any]) -> str:
    """A value as Secrets Manager's GenerateSecretString makes one, for the options template.yaml uses."""
    unsupported = sorted(set(spec) - {"PasswordLength", "ExcludePunctuation"})
    if unsupported:
        raise ValueError(f"GenerateSecretString {', '.join(unsupported)} is not supported locally")
    alphabet = string.ascii_letters + string.digits
    if not flag(spec.get("ExcludePunctuation")):
        alphabet += string.punctuation
    return "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))


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
    if "Description" in properties:
        request["Description"] = str(properties["Description"])
    try:
        arn = str(client.create_secret(**request)["ARN"])
    except ClientError as error:
        if _error_code(error) != "ResourceExistsException":
            raise
        arn = str(client.describe_secret(SecretId=name)["ARN"])  # keep the existing value (signing key)
    stack.physical_ids[logical_id] = arn
    stack.attributes[logical_id] = {"Arn": arn, "Id": arn, "Name": name}


_SQS_ATTRIBUTES = ("MessageRetentionPeriod", "RedrivePolicy", "SqsManagedSseEnabled", "VisibilityTimeout")


def _create_queue(
    logical_id: str, properties: dict[str, Any], stack: Stack, session: boto3.session.Session
) -> None:
    client = session.client("sqs")
    name = str(properties.get("QueueName") or f"{stack.name}-{logical_id}")
    attributes = {key: scalar_str(properties[key]) for key in _SQS_ATTRIBUTES if key in properties}
    request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    url = str(client.create_queue(**request)["QueueUrl"])
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.physical_ids[logical_id] = url
    stack.attributes[logical_id] = {"Arn": str(arn), "QueueName": name, "QueueUrl": url}


_PROVISIONERS: dict[str, _Provisioner] = {
    "AWS::DynamoDB::Table": _create_table,
    "AWS::SecretsManager::Secret": _create_secret,
    "AWS::SQS::Queue": _create_queue,
}

"""broker_local.template: the real template.yaml provisioned in moto, and resolve() on small templates."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from broker_local.functions import Route, function_environment, http_routes, schedules
from broker_local.template import Stack, load_template, provision, resolve

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def session(aws_credentials: None) -> Iterator[boto3.session.Session]:
    """A boto3 session on moto's in-process AWS, never a real account."""
    with mock_aws():
        yield boto3.session.Session()


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


# --- the real template ------------------------------------------------------------------------------


def test_provisioned_tables_have_the_key_schema_and_flows_has_ttl(
    template: dict[str, Any], session: boto3.session.Session
) -> None:
    stack = provision(template, session=session)

    dynamodb = session.client("dynamodb")
    for logical_id in ("SubscriptionsTable", "FlowsTable"):
        name = stack.physical_ids[logical_id]
        assert name == f"zoho-broker-local-{logical_id}"
        table = dynamodb.describe_table(TableName=name)["Table"]
        properties = template["Resources"][logical_id]["Properties"]
        assert table["KeySchema"] == properties["KeySchema"]
        assert table["AttributeDefinitions"] == properties["AttributeDefinitions"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert stack.attributes[logical_id]["Arn"] == table["TableArn"]
    ttl = dynamodb.describe_time_to_live(TableName=stack.physical_ids["FlowsTable"])["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_the_state_signing_key_is_64_alphanumeric_characters(
    template: dict[str, Any], session: boto3.session.Session
) -> None:
    stack = provision(template, session=session)

    arn = stack.physical_ids["StateSigningKeySecret"]
    secret = session.client("secretsmanager").get_secret_value(SecretId=arn)
    assert secret["Name"] == "zoho-broker-local/state-signing-key"
    value = secret["SecretString"]
    assert len(value) == 64
    assert set(value) <= set(string.ascii_letters + string.digits)


def test_provisioning_again_keeps_the_signing_key(
    template: dict[str, Any], session: boto3.session.Session
) -> None:
    first = provision(template, session=session)
    second = provision(template, session=session)

    assert second.physical_ids == first.physical_ids


def test_the_start_functions_environment_names_the_stack(
    template: dict[str, Any], session: boto3.session.Session
) -> None:
    stack = provision(template, session=session)

    env = function_environment(template, stack, "StartFunction")

    assert env["BROKER_SUBSCRIPTIONS_TABLE"] == stack.physical_ids["SubscriptionsTable"]
    assert env["BROKER_FLOWS_TABLE"] == stack.physical_ids["FlowsTable"]
    assert env["BROKER_SECRET_PREFIX"] == "zoho-broker-local/subscriptions/"
    assert env["BROKER_STATE_KEY_SECRET_ID"] == stack.physical_ids["StateSigningKeySecret"]
    assert env["BROKER_STATE_TTL_SECONDS"] == "600"
    assert env["BROKER_PUBLIC_BASE_URL"] == ""
    assert all(isinstance(value, str) for value in env.values())


def test_public_and_admin_routes_are_listed(
    template: dict[str, Any],
) -> None:
    routes = http_routes(template)

    assert Route("GET", "/connect/{link}", "StartFunction", "functions/start", "app.handler", None) in routes
    assert (
        Route("GET", "/oauth/callback", "CallbackFunction", "functions/callback", "app.handler", None)
        in routes
    )
    admin = [route for route in routes if route.path.startswith("/admin/")]
    assert admin
    assert {route.function_id for route in admin} == {"AdminFunction"}
    assert {route.auth for route in admin} == {"AWS_IAM"}
    assert ("POST", "/admin/subscriptions") in {(route.method, route.path) for route in admin}
    for route in routes:
        assert (ROOT / route.code_uri / "app.py").is_file()


def test_only_the_three_pages_a_person_opens_are_public(template: dict[str, Any]) -> None:
    # The API's default authorizer is AWS_IAM: a route added without an Auth block is closed, not open.
    public = {(route.method, route.path) for route in http_routes(template) if route.auth is None}

    assert public == {("GET", "/connect/{link}"), ("POST", "/connect/{link}"), ("GET", "/oauth/callback")}
    assert template["Resources"]["HttpApi"]["Properties"]["Auth"]["DefaultAuthorizer"] == "AWS_IAM"


def test_a_non_local_api_id_resolves_to_empty(
    template: dict[str, Any], session: boto3.session.Session
) -> None:
    stack = provision(template, session=session)

    outputs = resolve(template["Outputs"], stack)

    assert outputs["ApiUrl"]["Value"] == "https://.execute-api.eu-west-1.amazonaws.com"
    assert outputs["SubscriptionsTableName"]["Value"] == stack.physical_ids["SubscriptionsTable"]


def test_the_refresh_queue_redrives_to_its_dead_letter_queue_as_the_template_says(
    template: dict[str, Any], session: boto3.session.Session
) -> None:
    stack = provision(template, session=session)

    attributes = session.client("sqs").get_queue_attributes(
        QueueUrl=stack.physical_ids["RefreshQueue"], AttributeNames=["All"]
    )["Attributes"]
    declared = template["Resources"]["RefreshQueue"]["Properties"]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": stack.attributes["RefreshDeadLetterQueue"]["Arn"],
        "maxReceiveCount": declared["RedrivePolicy"]["maxReceiveCount"],
    }
    assert attributes["VisibilityTimeout"] == str(declared["VisibilityTimeout"])


def test_the_refresher_schedule_comes_from_the_template_parameter(
    template: dict[str, Any], session: boto3.session.Session
) -> None:
    stack = provision(template, session=session)

    found = schedules(template, stack)

    default = template["Parameters"]["RefreshSchedule"]["Default"]
    assert [(item.function_id, item.expression, item.enabled) for item in found] == [
        ("RefresherFunction", default, True)
    ]


# --- loading ----------------------------------------------------------------------------------------

SHORT_FORMS = """
AWSTemplateFormatVersion: 2010-09-09
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  NotProd: !Not [!Condition IsProd]
Outputs:
  A: !GetAtt Table.Arn
  B: !GetAtt [Table, StreamArn]
  C: !Sub "${AWS::StackName}-x"
  D: !If [IsProd, a, b]
  E: !GetAtt Db.Endpoint.Address
  F: !Join [",", [a, b]]
"""


def test_short_form_tags_load_as_the_long_form(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(SHORT_FORMS)

    loaded = load_template(path)

    assert loaded["AWSTemplateFormatVersion"] == "2010-09-09"
    assert loaded["Conditions"] == {
        "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
        "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
    }
    assert loaded["Outputs"] == {
        "A": {"Fn::GetAtt": ["Table", "Arn"]},
        "B": {"Fn::GetAtt": ["Table", "StreamArn"]},
        "C": {"Fn::Sub": "${AWS::StackName}-x"},
        "D": {"Fn::If": ["IsProd", "a", "b"]},
        "E": {"Fn::GetAtt": ["Db", "Endpoint.Address"]},
        "F": {"Fn::Join": [",", ["a", "b"]]},
    }


def test_the_cfn_loader_leaves_the_global_safe_loader_untouched(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("A: !Ref B\n")
    load_template(path)

    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load("A: !Ref B\n")


# --- resolve(): the intrinsics template.yaml uses, and the refusals ----------------------------------

SMALL: dict[str, Any] = {
    "Parameters": {"Stage": {"Type": "String", "Default": "dev", "AllowedValues": ["dev", "prod"]}},
    "Conditions": {
        "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
        "IsDev": {"Fn::Not": [{"Condition": "IsProd"}]},
    },
    "Resources": {"Events": {"Type": "AWS::DynamoDB::Table"}, "Api": {"Type": "AWS::Serverless::HttpApi"}},
}


def test_sub_getatt_and_pseudo_parameters_resolve_to_the_local_stack() -> None:
    stack = Stack.from_template(SMALL, stack_name="small", region="eu-west-1")
    stack.physical_ids["Events"] = "events-table"
    stack.attributes["Events"] = {"Arn": "arn:aws:dynamodb:eu-west-1:123456789012:table/events-table"}

    value = resolve(
        {
            "sub": {
                "Fn::Sub": "${AWS::StackName}/${Stage}/${Events}/${Events.Arn}/${AWS::Region}/${!Literal}"
            },
            "get_att": {"Fn::GetAtt": ["Events", "Arn"]},
            "partition": {"Fn::Sub": "${AWS::Partition}:${AWS::AccountId}:${AWS::URLSuffix}"},
            "not_local": {"Ref": "Api"},
            "not_local_att": {"Fn::GetAtt": ["Api", "ApiEndpoint"]},
        },
        stack,
    )

    assert value == {
        "sub": (
            "small/dev/events-table/arn:aws:dynamodb:eu-west-1:123456789012:table/events-table/eu-west-1/${Literal}"
        ),
        "get_att": "arn:aws:dynamodb:eu-west-1:123456789012:table/events-table",
        "partition": "aws:123456789012:amazonaws.com",
        "not_local": "",
        "not_local_att": "",
    }


def test_if_follows_the_conditions_and_no_value_drops_the_key_or_item() -> None:
    dev = Stack.from_template(SMALL, region="eu-west-1")
    prod = Stack.from_template(SMALL, parameters={"Stage": "prod"}, region="eu-west-1")
    value = {
        "memory": {"Fn::If": ["IsProd", 1024, 128]},
        "dev_only": {"Fn::If": ["IsDev", "yes", {"Ref": "AWS::NoValue"}]},
        "list": ["a", {"Ref": "AWS::NoValue"}, "b"],
    }

    assert resolve(value, dev) == {"memory": 128, "dev_only": "yes", "list": ["a", "b"]}
    assert resolve(value, prod) == {"memory": 1024, "list": ["a", "b"]}


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="not one of"):
        Stack.from_template(SMALL, parameters={"Stage": "qa"})
    with pytest.raises(ValueError, match="not declared"):
        Stack.from_template(SMALL, parameters={"Nope": "x"})


def test_an_unknown_ref_is_named() -> None:
    with pytest.raises(ValueError, match="Typo"):
        resolve({"Ref": "Typo"}, Stack.from_template(SMALL))


def test_an_intrinsic_the_template_does_not_use_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="Fn::Join is not supported locally"):
        resolve({"Fn::Join": [",", ["a", "b"]]}, Stack.from_template(SMALL))

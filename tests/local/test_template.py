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

from broker_local.template import (
    Route,
    Stack,
    function_environment,
    generate_secret_string,
    http_routes,
    load_template,
    provision,
    resolve,
    schedules,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    """A boto3 session on moto's in-process AWS, never a real account."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        yield boto3.session.Session()


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


# --- the real template ------------------------------------------------------------------------------


def test_given_the_template_when_provisioned_then_both_tables_have_its_key_schema_and_flows_has_ttl(
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


def test_given_the_template_when_provisioned_then_the_state_signing_key_is_64_alphanumeric_characters(
    template: dict[str, Any], session: boto3.session.Session
) -> None:
    stack = provision(template, session=session)

    arn = stack.physical_ids["StateSigningKeySecret"]
    secret = session.client("secretsmanager").get_secret_value(SecretId=arn)
    assert secret["Name"] == "zoho-broker-local/state-signing-key"
    value = secret["SecretString"]
    assert len(value) == 64
    assert set(value) <= set(string.ascii_letters + string.digits)


def test_given_a_provisioned_stack_when_provisioned_again_then_the_signing_key_is_kept(
    template: dict[str, Any], session: boto3.session.Session
) -> None:
    first = provision(template, session=session)
    second = provision(template, session=session)

    assert second.physical_ids == first.physical_ids


def test_given_a_provisioned_stack_when_reading_the_start_function_environment_then_it_names_the_stack(
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


def test_given_the_template_when_listing_http_routes_then_public_and_admin_routes_are_there(
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


def test_given_the_template_when_resolving_outputs_then_the_api_id_that_is_not_local_becomes_empty(
    template: dict[str, Any], session: boto3.session.Session
) -> None:
    stack = provision(template, session=session)

    outputs = resolve(template["Outputs"], stack)

    assert outputs["ApiUrl"]["Value"] == "https://.execute-api.eu-west-1.amazonaws.com"
    assert outputs["SubscriptionsTableName"]["Value"] == stack.physical_ids["SubscriptionsTable"]


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
  D: !Sub ["${X}-y", {X: !Ref Stage}]
  E: !Join [",", [!Select [0, !Split ["/", "a/b"]], !Base64 abc]]
  F: !If [IsProd, !FindInMap [M, K, V], !ImportValue other]
  G: !And [!Or [!Condition IsProd, !Equals [a, a]], !Condition NotProd]
  H: !GetAtt Db.Endpoint.Address
"""


def test_given_short_form_tags_when_loading_then_they_become_long_form(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(SHORT_FORMS)

    loaded = load_template(path)

    assert loaded["AWSTemplateFormatVersion"] == "2010-09-09"
    assert loaded["Conditions"] == {
        "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
        "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
    }
    outputs = loaded["Outputs"]
    assert outputs["A"] == {"Fn::GetAtt": ["Table", "Arn"]}
    assert outputs["B"] == {"Fn::GetAtt": ["Table", "StreamArn"]}
    assert outputs["C"] == {"Fn::Sub": "${AWS::StackName}-x"}
    assert outputs["D"] == {"Fn::Sub": ["${X}-y", {"X": {"Ref": "Stage"}}]}
    assert outputs["E"] == {
        "Fn::Join": [",", [{"Fn::Select": [0, {"Fn::Split": ["/", "a/b"]}]}, {"Fn::Base64": "abc"}]]
    }
    assert outputs["F"] == {
        "Fn::If": ["IsProd", {"Fn::FindInMap": ["M", "K", "V"]}, {"Fn::ImportValue": "other"}]
    }
    assert outputs["G"] == {
        "Fn::And": [
            {"Fn::Or": [{"Condition": "IsProd"}, {"Fn::Equals": ["a", "a"]}]},
            {"Condition": "NotProd"},
        ]
    }
    assert outputs["H"] == {"Fn::GetAtt": ["Db", "Endpoint.Address"]}


def test_given_the_cfn_loader_when_loading_then_the_global_safe_loader_is_untouched(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("A: !Ref B\n")
    load_template(path)

    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load("A: !Ref B\n")


# --- resolve() on small templates ---------------------------------------------------------------------

SMALL: dict[str, Any] = {
    "Parameters": {
        "Stage": {"Type": "String", "Default": "dev", "AllowedValues": ["dev", "prod"]},
        "Size": {"Type": "Number", "Default": 5},
        "Names": {"Type": "CommaDelimitedList", "Default": "a,b"},
    },
    "Conditions": {
        "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
        "IsDev": {"Fn::Not": [{"Condition": "IsProd"}]},
        "Either": {"Fn::Or": [{"Condition": "IsProd"}, {"Condition": "IsDev"}]},
    },
    "Mappings": {"Sizes": {"dev": {"Memory": 128}, "prod": {"Memory": 1024}}},
    "Resources": {
        # Declared before its dead-letter queue: provisioning must still create the DLQ first.
        "WorkQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "VisibilityTimeout": 90,
                "MessageRetentionPeriod": 3600,
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetters", "Arn"]},
                    "maxReceiveCount": 3,
                },
            },
        },
        "DeadLetters": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"QueueName": {"Fn::Sub": "${AWS::StackName}-dlq"}},
        },
        "Ordered": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"FifoQueue": True, "ContentBasedDeduplication": True},
        },
        "Bus": {
            "Type": "AWS::Events::EventBus",
            "Properties": {"Name": {"Fn::Sub": "${AWS::StackName}-events"}},
        },
        "Alerts": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": "alerts"}},
        "Events": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "TableName": {"Fn::Sub": "${AWS::StackName}-events-${Stage}"},
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "gsi1", "AttributeType": "S"},
                ],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "GlobalSecondaryIndexes": [
                    {
                        "IndexName": "by-gsi1",
                        "KeySchema": [{"AttributeName": "gsi1", "KeyType": "HASH"}],
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                    }
                ],
                "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
            },
        },
        "ProdOnly": {
            "Type": "AWS::SQS::Queue",
            "Condition": "IsProd",
            "Properties": {},
        },
        "Api": {"Type": "AWS::Serverless::HttpApi", "Properties": {}},
        "Worker": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "CodeUri": "functions/worker",
                "Handler": "app.handler",
                "Environment": {
                    "Variables": {
                        "QUEUE_URL": {"Ref": "WorkQueue"},
                        "RETRIES": 3,
                        "VERBOSE": True,
                        "LEVEL": "DEBUG",
                    }
                },
                "Events": {
                    "Tick": {"Type": "Schedule", "Properties": {"Schedule": "rate(5 minutes)"}},
                    "Nightly": {
                        "Type": "ScheduleV2",
                        "Properties": {"ScheduleExpression": "cron(0 2 * * ? *)", "State": "DISABLED"},
                    },
                },
            },
        },
    },
    "Globals": {"Function": {"Environment": {"Variables": {"LEVEL": "INFO", "STAGE": {"Ref": "Stage"}}}}},
}


def test_given_a_dead_letter_queue_declared_later_when_provisioning_then_redrive_points_at_it(
    session: boto3.session.Session,
) -> None:
    stack = provision(SMALL, stack_name="small", session=session)

    sqs = session.client("sqs")
    dlq_url = stack.physical_ids["DeadLetters"]
    assert dlq_url.endswith("/small-dlq")
    attributes = sqs.get_queue_attributes(QueueUrl=stack.physical_ids["WorkQueue"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": stack.attributes["DeadLetters"]["Arn"],
        "maxReceiveCount": 3,
    }
    assert attributes["VisibilityTimeout"] == "90"
    assert attributes["MessageRetentionPeriod"] == "3600"
    assert stack.attributes["WorkQueue"]["QueueName"] == "small-WorkQueue"
    assert stack.attributes["Ordered"]["QueueName"] == "small-Ordered.fifo"


def test_given_other_resource_types_when_provisioning_then_bus_topic_and_stream_table_exist(
    session: boto3.session.Session,
) -> None:
    stack = provision(SMALL, stack_name="small", session=session)

    assert stack.physical_ids["Bus"] == "small-events"
    assert stack.attributes["Bus"]["Arn"].endswith(":event-bus/small-events")
    assert stack.physical_ids["Alerts"].startswith("arn:aws:sns:eu-west-1:123456789012:small-Alerts")
    table = session.client("dynamodb").describe_table(TableName="small-events-dev")["Table"]
    assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "by-gsi1"
    assert stack.attributes["Events"]["StreamArn"] == table["LatestStreamArn"]
    assert "ProdOnly" not in stack.physical_ids  # its condition is false
    assert "Api" not in stack.physical_ids  # serverless resources are not provisioned


def test_given_intrinsics_when_resolving_then_sub_getatt_join_select_split_and_findinmap_work() -> None:
    stack = Stack.from_template(SMALL, stack_name="small", region="eu-west-1")
    stack.physical_ids["Events"] = "events-table"
    stack.attributes["Events"] = {"Arn": "arn:aws:dynamodb:eu-west-1:123456789012:table/events-table"}

    value = resolve(
        {
            "sub": {
                "Fn::Sub": "${AWS::StackName}/${Stage}/${Events}/${Events.Arn}/${AWS::Region}/${!Literal}"
            },
            "sub_list": {"Fn::Sub": ["${Prefix}-${Size}-${AWS::AccountId}", {"Prefix": {"Ref": "Stage"}}]},
            "get_att": {"Fn::GetAtt": ["Events", "Arn"]},
            "get_att_dotted": {"Fn::GetAtt": "Events.Arn"},
            "join": {"Fn::Join": ["+", [{"Ref": "AWS::Partition"}, {"Ref": "AWS::URLSuffix"}, 7]]},
            "select": {"Fn::Select": ["1", {"Fn::Split": [",", "x,y,z"]}]},
            "names": {"Ref": "Names"},
            "memory": {"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Memory"]},
            "not_local": {"Ref": "Api"},
            "not_local_att": {"Fn::GetAtt": ["Api", "ApiEndpoint"]},
        },
        stack,
    )

    assert value == {
        "sub": (
            "small/dev/events-table/arn:aws:dynamodb:eu-west-1:123456789012:table/events-table/eu-west-1/${Literal}"
        ),
        "sub_list": "dev-5-123456789012",
        "get_att": "arn:aws:dynamodb:eu-west-1:123456789012:table/events-table",
        "get_att_dotted": "arn:aws:dynamodb:eu-west-1:123456789012:table/events-table",
        "join": "aws+amazonaws.com+7",
        "select": "y",
        "names": ["a", "b"],
        "memory": 128,
        "not_local": "",
        "not_local_att": "",
    }


def test_given_conditions_when_resolving_if_then_the_branch_follows_the_parameters() -> None:
    dev = Stack.from_template(SMALL, region="eu-west-1")
    prod = Stack.from_template(SMALL, parameters={"Stage": "prod"}, region="eu-west-1")
    value = {
        "memory": {"Fn::If": ["IsProd", 1024, 128]},
        "either": {"Fn::If": ["Either", "yes", "no"]},
        "both": {"Fn::And": [{"Condition": "IsDev"}, {"Fn::Equals": [{"Ref": "Size"}, 5]}]},
    }

    assert resolve(value, dev) == {"memory": 128, "either": "yes", "both": True}
    assert resolve(value, prod) == {"memory": 1024, "either": "yes", "both": False}


def test_given_no_value_when_resolving_then_the_key_or_item_disappears() -> None:
    stack = Stack.from_template(SMALL, region="eu-west-1")

    value = resolve(
        {
            "Keep": 1,
            "Drop": {"Ref": "AWS::NoValue"},
            "MaybeDrop": {"Fn::If": ["IsProd", "prod-only", {"Ref": "AWS::NoValue"}]},
            "List": ["a", {"Ref": "AWS::NoValue"}, "b"],
        },
        stack,
    )

    assert value == {"Keep": 1, "List": ["a", "b"]}


def test_given_bad_parameters_when_building_a_stack_then_it_refuses() -> None:
    with pytest.raises(ValueError, match="not one of"):
        Stack.from_template(SMALL, parameters={"Stage": "qa"})
    with pytest.raises(ValueError, match="not declared"):
        Stack.from_template(SMALL, parameters={"Nope": "x"})


def test_given_an_unknown_name_when_resolving_a_ref_then_it_says_so() -> None:
    stack = Stack.from_template(SMALL)

    with pytest.raises(ValueError, match="Typo"):
        resolve({"Ref": "Typo"}, stack)


def test_given_globals_and_own_variables_when_reading_the_environment_then_own_wins_and_all_are_strings(
    session: boto3.session.Session,
) -> None:
    stack = provision(SMALL, stack_name="small", session=session)

    env = function_environment(SMALL, stack, "Worker")

    assert env == {
        "LEVEL": "DEBUG",
        "STAGE": "dev",
        "QUEUE_URL": stack.physical_ids["WorkQueue"],
        "RETRIES": "3",
        "VERBOSE": "true",
    }


def test_given_schedule_events_when_listing_schedules_then_both_kinds_are_found() -> None:
    found = schedules(SMALL)

    assert [(item.function_id, item.event_id, item.expression, item.enabled) for item in found] == [
        ("Worker", "Tick", "rate(5 minutes)", True),
        ("Worker", "Nightly", "cron(0 2 * * ? *)", False),
    ]


def test_given_a_secret_template_when_generating_then_json_holds_a_password_without_excluded_chars() -> None:
    value = generate_secret_string(
        {
            "SecretStringTemplate": '{"username": "broker"}',
            "GenerateStringKey": "password",
            "PasswordLength": 40,
            "ExcludeCharacters": "abc",
            "ExcludeUppercase": True,
        }
    )

    document = json.loads(value)
    assert document["username"] == "broker"
    password = document["password"]
    assert len(password) == 40
    assert not set(password) & set("abc" + string.ascii_uppercase)
    assert set(password) & set(string.punctuation)
    assert set(password) & set(string.digits)

"""Yardstick: the start function's work (POST /connect/{link}) written by hand with boto3 and the
standard library only: the same five AWS calls, no framework, no validation library.

Like the broker, it reads the subscription's integration from the table (an operator may have edited it
at runtime) and falls back to the built-in scope when there is no stored copy."""

import base64
import hashlib
import hmac
import os
import secrets
import time
from urllib.parse import urlencode

import boto3

dynamodb = boto3.client("dynamodb")
secretsmanager = boto3.client("secretsmanager")
FLOWS = os.environ["BROKER_FLOWS_TABLE"]
SUBSCRIPTIONS = os.environ["BROKER_SUBSCRIPTIONS_TABLE"]
KEY_ID = os.environ["BROKER_STATE_KEY_SECRET_ID"]


def _sha256(value):
    return hashlib.sha256(value.encode()).hexdigest()


def handler(event, context):
    token = event["pathParameters"]["link"]
    link_hash = _sha256(token)
    link = dynamodb.get_item(
        TableName=FLOWS, Key={"pk": {"S": "link#" + link_hash}}, ConsistentRead=True
    ).get("Item")
    if link is None or int(link["expires_at"]["N"]) <= time.time():
        return {"statusCode": 410, "body": "gone"}
    subscription_id = link["subscription_id"]["S"]
    subscription = dynamodb.get_item(
        TableName=SUBSCRIPTIONS, Key={"pk": {"S": "sub#" + subscription_id}}, ConsistentRead=True
    )["Item"]
    stored = dynamodb.get_item(
        TableName=SUBSCRIPTIONS,
        Key={"pk": {"S": "integration#" + subscription["integration"]["S"]}},
        ConsistentRead=True,
    ).get("Item")
    scope = stored["scope"]["S"] if stored else "ZohoCRM.modules.ALL"
    key = secretsmanager.get_secret_value(SecretId=KEY_ID)["SecretString"].encode()
    nonce = secrets.token_urlsafe(32)
    digest = hmac.new(key, f"state|{nonce}|{subscription_id}".encode(), hashlib.sha256).digest()
    state = f"{nonce}.{subscription_id}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"
    binding = secrets.token_urlsafe(32)
    domain = event["requestContext"]["domainName"]
    redirect_uri = f"https://{domain}/oauth/callback"
    dynamodb.transact_write_items(
        TransactItems=[
            {
                "Delete": {
                    "TableName": FLOWS,
                    "Key": {"pk": {"S": "link#" + link_hash}},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": FLOWS,
                    "Item": {
                        "pk": {"S": "state#" + nonce},
                        "subscription_id": {"S": subscription_id},
                        "binding_hash": {"S": _sha256(binding)},
                        "redirect_uri": {"S": redirect_uri},
                        "expires_at": {"N": str(int(time.time()) + 600)},
                        "generation": link.get("generation", {"N": "0"}),
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
    )
    query = urlencode(
        {
            "scope": scope,
            "client_id": subscription["client_id"]["S"],
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "access_type": "offline",
            "prompt": "consent",
            "state": state,
        }
    )
    return {
        "statusCode": 302,
        "headers": {"Location": "https://accounts.zoho.com/oauth/v2/auth?" + query},
        "cookies": [f"__Host-zoho_broker_binding={binding}; Path=/; Secure; HttpOnly; SameSite=Lax"],
        "body": "",
    }

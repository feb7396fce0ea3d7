"""Yardstick: the callback's work (GET /oauth/callback with a code) written by hand with boto3 and the
standard library only: the same AWS calls in the same order (the stored integration read, and the
"connected" event published to EventBridge, as the broker does), and the token exchange and the
organization check (CRM's GET /org with the new token, its id and name stored) with urllib."""

import base64
import hashlib
import hmac
import json
import os
import time
import urllib.request
import uuid
from urllib.parse import urlencode

import boto3

dynamodb = boto3.client("dynamodb")
secretsmanager = boto3.client("secretsmanager")
events = boto3.client("events")
FLOWS = os.environ["BROKER_FLOWS_TABLE"]
SUBSCRIPTIONS = os.environ["BROKER_SUBSCRIPTIONS_TABLE"]
KEY_ID = os.environ["BROKER_STATE_KEY_SECRET_ID"]
SECRET_PREFIX = os.environ["BROKER_SECRET_PREFIX"]
ALLOWED = set(json.loads(os.environ["BROKER_ZOHO_ACCOUNTS_SERVERS"]).values())
BUS = os.environ.get("BROKER_EVENT_BUS_NAME", "default")


def _page(status, text):
    return {"statusCode": status, "headers": {"Content-Type": "text/html; charset=utf-8"}, "body": text}


def handler(event, context):
    query = event["queryStringParameters"]
    cookies = dict(cookie.split("=", 1) for cookie in event.get("cookies", []))
    key = secretsmanager.get_secret_value(SecretId=KEY_ID)["SecretString"].encode()
    nonce, subscription_id, signature = query["state"].split(".")
    digest = hmac.new(key, f"state|{nonce}|{subscription_id}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()):
        return _page(400, "bad state")
    state = dynamodb.delete_item(
        TableName=FLOWS,
        Key={"pk": {"S": "state#" + nonce}},
        ConditionExpression="attribute_exists(pk)",
        ReturnValues="ALL_OLD",
    )["Attributes"]
    binding = cookies["__Host-zoho_broker_binding"]
    if state["binding_hash"]["S"] != hashlib.sha256(binding.encode()).hexdigest():
        return _page(400, "another browser")
    if query["accounts-server"] not in ALLOWED:
        return _page(400, "untrusted accounts server")
    key_attribute = {"pk": {"S": "sub#" + subscription_id}}
    subscription = dynamodb.get_item(TableName=SUBSCRIPTIONS, Key=key_attribute, ConsistentRead=True)["Item"]
    stored = dynamodb.get_item(
        TableName=SUBSCRIPTIONS,
        Key={"pk": {"S": "integration#" + subscription["integration"]["S"]}},
        ConsistentRead=True,
    ).get("Item")
    token_path = stored["token_path"]["S"] if stored else "/oauth/v2/token"
    now = int(time.time())
    owner = f"connect:{uuid.uuid4().hex}"
    dynamodb.update_item(
        TableName=SUBSCRIPTIONS,
        Key=key_attribute,
        UpdateExpression="SET lease_owner = :owner, lease_expires_at = :until",
        ConditionExpression="attribute_exists(pk) AND "
        "(attribute_not_exists(lease_owner) OR lease_expires_at < :now)",
        ExpressionAttributeValues={
            ":owner": {"S": owner},
            ":until": {"N": str(now + 60)},
            ":now": {"N": str(now)},
        },
        ReturnValues="ALL_NEW",
    )
    secret_id = SECRET_PREFIX + subscription_id
    secret = json.loads(secretsmanager.get_secret_value(SecretId=secret_id)["SecretString"])
    form = urlencode(
        {
            "grant_type": "authorization_code",
            "client_id": subscription["client_id"]["S"],
            "client_secret": secret["client_secret"],
            "code": query["code"],
            "redirect_uri": state["redirect_uri"]["S"],
        }
    ).encode()
    request = urllib.request.Request(query["accounts-server"] + token_path, data=form, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        tokens = json.loads(answer.read())
    check = urllib.request.Request(
        tokens["api_domain"] + "/crm/v8/org",
        headers={"Authorization": "Zoho-oauthtoken " + tokens["access_token"]},
    )
    with urllib.request.urlopen(check, timeout=5) as answer:
        organization = json.loads(answer.read())["org"][0]
    bound = subscription.get("organization", {}).get("M", {}).get("id", {}).get("S")
    if bound and bound != str(organization["id"]):
        return _page(409, "another organization")
    expires_at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now + tokens["expires_in"]))
    secret.update(
        refresh_token=tokens["refresh_token"],
        access_token=tokens["access_token"],
        access_token_expires_at=expires_at,
        api_domain=tokens.get("api_domain"),
        data_centre=query["location"],
        token_type=tokens.get("token_type", "Bearer"),
    )
    secretsmanager.put_secret_value(SecretId=secret_id, SecretString=json.dumps(secret))
    dynamodb.update_item(
        TableName=SUBSCRIPTIONS,
        Key=key_attribute,
        UpdateExpression="SET #status = :status, data_centre = :dc, access_token_expires_at = :expires, "
        "organization = :organization, "
        "connect_generation = if_not_exists(connect_generation, :zero) + :one "
        "REMOVE lease_owner, lease_expires_at",
        ConditionExpression="lease_owner = :owner",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={
            ":status": {"S": "connected"},
            ":dc": {"S": query["location"]},
            ":expires": {"S": expires_at},
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            ":owner": {"S": owner},
            ":organization": {
                "M": {
                    "id": {"S": str(organization["id"])},
                    "name": {"S": organization["company_name"]},
                    "verified_at": {"S": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now))},
                }
            },
        },
        ReturnValues="ALL_OLD",
    )
    events.put_events(
        Entries=[
            {
                "Source": "zoho-broker",
                "DetailType": "Subscription connected",
                "Detail": json.dumps({"subscription_id": subscription_id, "data_centre": query["location"]}),
                "EventBusName": BUS,
            }
        ]
    )
    return _page(200, "<p>Connected to Zoho CRM (US). You may close this page.</p>")

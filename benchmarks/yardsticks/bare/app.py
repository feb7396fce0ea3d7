"""Yardstick: a bare handler that imports boto3 and creates its clients, and does nothing else."""

import boto3

dynamodb = boto3.client("dynamodb")
secretsmanager = boto3.client("secretsmanager")


def handler(event, context):
    return {"statusCode": 200}

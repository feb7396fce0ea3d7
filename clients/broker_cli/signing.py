"""AWS SigV4 signing for the deployed admin API (execute-api, AWS_IAM routes), with botocore's signer."""

from __future__ import annotations

import os
import re
from collections.abc import Generator

import botocore.session
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ProfileNotFound

from broker_cli.errors import CliError

SERVICE = "execute-api"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# https://{api-id}.execute-api.{region}.amazonaws.com: the region is in the host name.
EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
NO_CREDENTIALS = (
    "signing needs AWS credentials and none were found: set AWS_PROFILE (or pass --profile), "
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or log in with `aws sso login`; "
    "the local runner needs no signature (--no-sign)"
)
# Headers the signature covers besides host and x-amz-date; the rest (user-agent, ...) may change freely.
SIGNED_HEADERS = ("content-type",)
SIGNATURE_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")


def should_sign(url: str, requested: bool | None) -> bool:
    """--sign/--no-sign when given; otherwise sign https URLs that are not this machine."""
    if requested is not None:
        return requested
    parsed = httpx.URL(url)
    local = parsed.host in LOCAL_HOSTS or parsed.host.endswith(".localhost")
    return parsed.scheme == "https" and not local


def region_from_url(url: str) -> str | None:
    match = EXECUTE_API_HOST.match(httpx.URL(url).host)
    return match.group(1) if match else None


class SigV4(httpx.Auth):
    """Signs every request as botocore would for `execute-api` (the body is part of the signature)."""

    requires_request_body = True

    def __init__(self, credentials: Credentials, region: str) -> None:
        self.credentials = credentials
        self.region = region

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        headers = {name: request.headers[name] for name in SIGNED_HEADERS if name in request.headers}
        aws_request = AWSRequest(
            method=request.method, url=str(request.url), headers=headers, data=request.content
        )
        # Frozen per request: refreshable credentials (SSO, assumed roles) may rotate between calls.
        SigV4Auth(self.credentials.get_frozen_credentials(), SERVICE, self.region).add_auth(aws_request)
        for name in SIGNATURE_HEADERS:
            value = aws_request.headers.get(name)
            if value is not None:
                request.headers[name] = value
        yield request


def sigv4_for(url: str, *, region: str | None, profile: str | None) -> SigV4:
    """The signer with credentials from the usual AWS chain; a clear error when there are none."""
    try:
        session = botocore.session.Session(profile=profile)
        credentials = session.get_credentials()
        configured_region = session.get_config_variable("region")
    except ProfileNotFound as error:
        raise CliError(f"signing needs AWS credentials: {error}") from None
    except BotoCoreError as error:  # expired SSO session, broken config file, ...
        raise CliError(f"signing needs AWS credentials and loading them failed: {error}") from None
    if credentials is None:
        raise CliError(NO_CREDENTIALS)
    chosen = (
        region
        or region_from_url(url)
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or (configured_region if isinstance(configured_region, str) else None)
    )
    if not chosen:
        raise CliError(
            "signing needs the API's AWS region: pass --region or set AWS_REGION (or AWS_DEFAULT_REGION)"
        )
    return SigV4(credentials, chosen)

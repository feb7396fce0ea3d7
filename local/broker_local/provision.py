"""`python -m broker_local.provision`: create template.yaml's tables, secrets and queues at an AWS
endpoint (a moto server) and print the environment the functions need there.

    moto_server -H 0.0.0.0 -p 5000
    python -m broker_local.provision --endpoint http://127.0.0.1:5000             # export lines
    python -m broker_local.provision --endpoint http://127.0.0.1:5000 --env-json  # env.json for sam local

The export lines are this machine's view (eval them to run a handler here). --env-json writes the view
from inside `sam local`'s containers: the endpoint, the queue URL and the Zoho stand-in on the Docker
host, and the signing-key secret by name (moto gives its ARN a random suffix on every start). Running it
again adopts what exists, so the signing key and any data survive.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import boto3
import botocore.session

from broker_local.functions import functions_environment
from broker_local.template import DEFAULT_REGION, DEFAULT_STACK_NAME, Stack, load_template, provision

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ENDPOINT = "http://127.0.0.1:5000"
CONTAINER_HOST = "host.docker.internal"  # the Docker host, as sam local's containers reach it
PUBLIC_BASE_URL = "http://127.0.0.1:3000"  # where `sam local start-api` listens by default
STANDIN_PORTS = {"us": 9001, "eu": 9002}  # python -m broker_local.zoho_standin's defaults
FAKE_KEY = "local"  # moto accepts any credentials; real ones are never sent to a local endpoint
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL"
ACCOUNTS_SERVERS_VARIABLE = "BROKER_ZOHO_ACCOUNTS_SERVERS"
PUBLIC_BASE_URL_VARIABLE = "BROKER_PUBLIC_BASE_URL"


def session_for(endpoint: str, region: str) -> boto3.session.Session:
    """A boto3 session that sends every client to the endpoint with fake credentials."""
    core = botocore.session.Session()
    core.get_component("config_store").set_config_variable("endpoint_url", endpoint)
    return boto3.session.Session(
        botocore_session=core,
        aws_access_key_id=FAKE_KEY,
        aws_secret_access_key=FAKE_KEY,
        region_name=region,
    )


def default_region() -> str:
    """The region `sam local` will use too: the profile's or environment's, else us-east-1."""
    return boto3.session.Session().region_name or DEFAULT_REGION


def with_host(url: str, origin: str) -> str:
    """url with its scheme and host:port replaced by origin's (http://127.0.0.1:5000/q -> origin/q)."""
    target = urlsplit(origin)
    parts = urlsplit(url)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, parts.fragment))


def docker_host_view(endpoint: str) -> str:
    """http://127.0.0.1:5000 -> http://host.docker.internal:5000."""
    parts = urlsplit(endpoint)
    netloc = CONTAINER_HOST if parts.port is None else f"{CONTAINER_HOST}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def stand_in_servers(host: str) -> dict[str, str]:
    return {data_centre: f"http://{host}:{port}" for data_centre, port in STANDIN_PORTS.items()}


def host_environment(
    environment: dict[str, str], *, endpoint: str, region: str, accounts_servers: str, public_base_url: str
) -> dict[str, str]:
    """The variables for running a handler on this machine against the endpoint."""
    return {
        **environment,
        ACCOUNTS_SERVERS_VARIABLE: accounts_servers,
        PUBLIC_BASE_URL_VARIABLE: public_base_url,
        ENDPOINT_VARIABLE: endpoint,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": FAKE_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_KEY,
    }


def container_environment(
    environment: dict[str, str],
    stack: Stack,
    *,
    endpoint: str,
    container_endpoint: str,
    accounts_servers: str,
    public_base_url: str,
) -> dict[str, str]:
    """The same variables as seen from sam local's containers. Only variables the template declares are
    listed: sam local ignores any other (credentials and region come from its own --region/profile)."""
    secret_names = {
        attributes["Arn"]: attributes["Name"]
        for attributes in stack.attributes.values()
        if attributes.get("Arn", "").startswith("arn:aws:secretsmanager:") and "Name" in attributes
    }
    local_origin = urlunsplit((*urlsplit(endpoint)[:2], "", "", ""))
    variables: dict[str, str] = {}
    for name, value in environment.items():
        if value in secret_names:
            value = secret_names[value]
        elif value.startswith(local_origin + "/"):  # a queue URL: moto names the host it was asked on
            value = with_host(value, container_endpoint)
        variables[name] = value
    variables[ACCOUNTS_SERVERS_VARIABLE] = accounts_servers
    variables[PUBLIC_BASE_URL_VARIABLE] = public_base_url
    variables[ENDPOINT_VARIABLE] = container_endpoint
    return variables


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m broker_local.provision",
        description="Create template.yaml's tables, secrets and queues at an AWS endpoint (a moto "
        "server) and print the functions' environment.",
    )
    parser.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help=f"default {DEFAULT_ENDPOINT}")
    parser.add_argument("--stack-name", default=DEFAULT_STACK_NAME, help=f"default {DEFAULT_STACK_NAME}")
    parser.add_argument("--region", help="default: the profile's or environment's region, else us-east-1")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter (repeatable); the others take their Default",
    )
    parser.add_argument(
        "--env-json", action="store_true", help="print an env.json for `sam local --env-vars` instead"
    )
    parser.add_argument(
        "--container-endpoint",
        help=f"the endpoint as containers reach it; default --endpoint with the host {CONTAINER_HOST}",
    )
    parser.add_argument(
        "--accounts-servers",
        help="BROKER_ZOHO_ACCOUNTS_SERVERS; default the Zoho stand-in (us 9001, eu 9002) on this machine, "
        "or on the Docker host with --env-json; '' means Zoho's real accounts servers",
    )
    parser.add_argument("--public-base-url", default=PUBLIC_BASE_URL, help=f"default {PUBLIC_BASE_URL}")
    options = parser.parse_args(argv)
    parameters: dict[str, str] = {}
    for item in options.parameter:
        name, separator, value = item.partition("=")
        if not separator or not name:
            parser.error(f"--parameter takes NAME=VALUE, not {item!r}")
        parameters[name] = value
    options.parameters = parameters
    return options


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    region = options.region or default_region()
    template = load_template(ROOT / "template.yaml")
    stack = provision(
        template,
        stack_name=options.stack_name,
        parameters=options.parameters,
        session=session_for(options.endpoint, region),
    )
    environment = functions_environment(template, stack)
    if options.env_json:
        container_endpoint = options.container_endpoint or docker_host_view(options.endpoint)
        servers = options.accounts_servers
        if servers is None:
            servers = json.dumps(stand_in_servers(urlsplit(container_endpoint).hostname or CONTAINER_HOST))
        variables = container_environment(
            environment,
            stack,
            endpoint=options.endpoint,
            container_endpoint=container_endpoint,
            accounts_servers=servers,
            public_base_url=options.public_base_url,
        )
        sys.stdout.write(json.dumps({"Parameters": variables}, indent=2) + "\n")
        return
    servers = options.accounts_servers
    if servers is None:
        servers = json.dumps(stand_in_servers("127.0.0.1"))
    variables = host_environment(
        environment,
        endpoint=options.endpoint,
        region=region,
        accounts_servers=servers,
        public_base_url=options.public_base_url,
    )
    print(f"# stack {stack.name} in {region} at {options.endpoint}")
    for name, value in variables.items():
        print(f"export {name}={shlex.quote(value)}")


if __name__ == "__main__":
    main()

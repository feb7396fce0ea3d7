"""What `sam local` runs in these tests: a copy of the built stack with longer timeouts, its env.json, and
the sam commands with the flags our machines need."""

from __future__ import annotations

import compileall
import json
import os
import py_compile
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from broker_local.provision import container_environment, docker_host_view, functions_environment, session_for
from broker_local.template import Stack, load_template
from broker_local.zoho_standin import ZohoStandIn
from tests.sam_build import ROOT, venv_tool

REGION = "eu-west-1"
# Under qemu a cold function takes 15 to 40 s; the template's 15 and 29 s would time out.
LOCAL_TIMEOUT_SECONDS = 180
INVOKE_SECONDS = 600  # one `sam local invoke`, its rapid image rebuilt included
FUNCTION_ROOT = "/var/task"  # where Lambda (and sam local) puts a function's code


def local_copy(build_dir: Path, destination: Path) -> Path:
    """The built stack copied with every function's Timeout raised, and its handlers' bytecode compiled in
    (the layer's comes with the build); returns the copy's template."""
    shutil.copytree(build_dir, destination)
    template_path = destination / "template.yaml"
    template = load_template(template_path)
    template["Globals"]["Function"]["Timeout"] = LOCAL_TIMEOUT_SECONDS
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["Timeout"] = LOCAL_TIMEOUT_SECONDS
            code = destination / resource["Properties"]["CodeUri"]
            compiled = compileall.compile_dir(
                code,
                quiet=1,
                stripdir=str(code),
                prependdir=FUNCTION_ROOT,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
            assert compiled, f"compiling {code} failed"
    # load_template turned the short tags (!Ref) into their long forms, which SAM reads as well.
    template_path.write_text(yaml.safe_dump(template, sort_keys=False))
    return template_path


def env_json(
    template: dict[str, Any],
    stack: Stack,
    *,
    endpoint: str,
    accounts_servers: dict[str, str],
    public_base_url: str,
) -> dict[str, Any]:
    """env.json as `python -m broker_local.provision --env-json` writes it, for these ports."""
    variables = container_environment(
        functions_environment(template, stack),
        stack,
        endpoint=endpoint,
        container_endpoint=docker_host_view(endpoint),
        accounts_servers=json.dumps(accounts_servers),
        public_base_url=public_base_url,
    )
    return {"Parameters": variables}


def sam_environment() -> dict[str, str]:
    """sam local hands the credentials and region to the containers; moto takes any credentials."""
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "SAM_CLI_TELEMETRY": "0",
    }


def sam_local(command: str, template: Path, env_file: Path, *options: str) -> list[str]:
    """`sam local <command>` on the local copy, with what our machines need: no pull (the base image is
    built locally), the Docker host reachable as host.docker.internal."""
    return [
        venv_tool("sam"),
        "local",
        command,
        "--template-file",
        str(template),
        "--env-vars",
        str(env_file),
        "--add-host",
        "host.docker.internal:host-gateway",
        "--skip-pull-image",
        "--region",
        REGION,
        *options,
    ]


def invoke(template: Path, env_file: Path, function: str, event: Path) -> tuple[Any, str]:
    """`sam local invoke` of the function with the event: its answer (None when there is none) and the
    output. The exit code says nothing: sam exits 0 on a timeout too."""
    result = subprocess.run(
        sam_local("invoke", template, env_file, function, "--event", str(event)),
        cwd=template.parent,
        env=sam_environment(),
        capture_output=True,
        text=True,
        timeout=INVOKE_SECONDS,
        check=False,
    )
    output = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    try:
        return json.loads(lines[-1]), output
    except (IndexError, json.JSONDecodeError):
        return None, output


@dataclass(frozen=True)
class LocalStack:
    template: Path  # the local copy of the built template
    env_file: Path
    stack: Stack
    endpoint: str  # moto's server, as this machine reaches it
    zoho: ZohoStandIn
    api_port: int  # where `sam local start-api` listens

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def invoke(self, function: str, event: str) -> tuple[Any, str]:
        """`sam local invoke` of the function with events/<event>: its answer and sam's output."""
        return invoke(self.template, self.env_file, function, ROOT / "events" / event)

    @property
    def variables(self) -> dict[str, str]:
        """The functions' environment (env.json), as the containers see it."""
        variables: dict[str, str] = json.loads(self.env_file.read_text())["Parameters"]
        return variables

    def stored_tokens(self, subscription_id: str) -> dict[str, Any]:
        """The subscription's secret in moto's Secrets Manager."""
        secrets = session_for(self.endpoint, REGION).client("secretsmanager")
        name = f"{self.variables['BROKER_SECRET_PREFIX']}{subscription_id}"
        stored: dict[str, Any] = json.loads(secrets.get_secret_value(SecretId=name)["SecretString"])
        return stored

    def make_due(self, subscription_id: str, *, seconds_left: int = 60) -> None:
        """Age the stored access token (it expires in seconds_left) and make its refresh due now."""
        session = session_for(self.endpoint, REGION)
        name = f"{self.variables['BROKER_SECRET_PREFIX']}{subscription_id}"
        stored = self.stored_tokens(subscription_id)
        stored["access_token_expires_at"] = (datetime.now(UTC) + timedelta(seconds=seconds_left)).isoformat()
        session.client("secretsmanager").put_secret_value(SecretId=name, SecretString=json.dumps(stored))
        session.client("dynamodb").update_item(
            TableName=self.variables["BROKER_SUBSCRIPTIONS_TABLE"],
            Key={"pk": {"S": f"sub#{subscription_id}"}},
            UpdateExpression="SET refresh_due_at = :now",
            ExpressionAttributeValues={":now": {"N": str(int(time.time()) - 1)}},
        )

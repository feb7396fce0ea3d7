"""`python -m broker_local.provision` against a real moto server, and env.json, which it generates."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from broker_local.provision import main, session_for
from broker_local.runner import free_port
from tests.aws_env import clear_aws_settings, use_credentials
from tests.conftest import ROOT

REGION = "us-east-1"
STACK = "zoho-broker-local"
ENV_JSON = ROOT / "env.json"
REGENERATE = "moto_server -p 5000 & python -m broker_local.provision --endpoint http://127.0.0.1:5000 --env-json > env.json"


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server of its own; the CLI must not need the process's AWS settings."""
    clear_aws_settings(monkeypatch)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port("127.0.0.1"), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    main([*argv, "--region", REGION])
    return capsys.readouterr().out


def exported(output: str) -> dict[str, str]:
    """The CLI's `export NAME=value` lines, read the way a shell would."""
    variables: dict[str, str] = {}
    for line in output.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        keyword, assignment = shlex.split(line)
        assert keyword == "export", line
        name, _, value = assignment.partition("=")
        variables[name] = value
    return variables


def test_provisioning_makes_the_resources_and_prints_their_names(
    endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    variables = exported(run(capsys, "--endpoint", endpoint))

    session = session_for(endpoint, REGION)
    tables = session.client("dynamodb").list_tables()["TableNames"]
    assert variables["BROKER_SUBSCRIPTIONS_TABLE"] == f"{STACK}-SubscriptionsTable"
    assert variables["BROKER_FLOWS_TABLE"] == f"{STACK}-FlowsTable"
    assert {variables["BROKER_SUBSCRIPTIONS_TABLE"], variables["BROKER_FLOWS_TABLE"]} <= set(tables)
    secret = session.client("secretsmanager").describe_secret(
        SecretId=variables["BROKER_STATE_KEY_SECRET_ID"]
    )
    assert secret["Name"] == f"{STACK}/state-signing-key"
    assert variables["BROKER_STATE_KEY_SECRET_ID"] == secret["ARN"]
    queue_url = session.client("sqs").get_queue_url(QueueName=f"{STACK}-RefreshQueue")["QueueUrl"]
    assert variables["BROKER_REFRESH_QUEUE_URL"] == queue_url
    assert variables["BROKER_SECRET_PREFIX"] == f"{STACK}/subscriptions/"
    assert variables["AWS_ENDPOINT_URL"] == endpoint
    assert variables["AWS_REGION"] == REGION


def test_operations_resources_do_not_get_in_the_way(
    endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "--endpoint", endpoint)

    session = session_for(endpoint, REGION)
    queues = session.client("sqs").list_queues()["QueueUrls"]
    assert any(url.endswith(f"/{STACK}-RefreshDeadLetterQueue") for url in queues), queues
    # The nested monitoring stack (alarms, their topic, the dashboard) and the log groups are not
    # provisioned locally: nothing reads them there.
    assert session.client("sns").list_topics()["Topics"] == []
    assert session.client("cloudwatch").describe_alarms()["MetricAlarms"] == []


def test_provisioning_again_keeps_the_signing_key(endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    first = exported(run(capsys, "--endpoint", endpoint))
    secrets = session_for(endpoint, REGION).client("secretsmanager")
    key = secrets.get_secret_value(SecretId=first["BROKER_STATE_KEY_SECRET_ID"])["SecretString"]

    second = exported(run(capsys, "--endpoint", endpoint))

    assert second == first
    assert secrets.get_secret_value(SecretId=second["BROKER_STATE_KEY_SECRET_ID"])["SecretString"] == key


def test_names_follow_another_stack_name(endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    variables = exported(run(capsys, "--endpoint", endpoint, "--stack-name", "other"))

    assert variables["BROKER_SUBSCRIPTIONS_TABLE"] == "other-SubscriptionsTable"
    assert variables["BROKER_SECRET_PREFIX"] == "other/subscriptions/"


def test_the_env_json_written_is_the_checked_in_one(
    endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the default endpoint, then the env.json it writes is the checked-in one.
    # The server listens on a free port here; containers would reach the usual one on the Docker host.
    output = run(
        capsys,
        "--endpoint",
        endpoint,
        "--env-json",
        "--container-endpoint",
        "http://host.docker.internal:5000",
    )

    assert json.loads(output) == json.loads(ENV_JSON.read_text()), f"env.json is stale; run {REGENERATE}"


def test_env_jsons_secret_and_queue_are_the_ones_provisioned(
    endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "--endpoint", endpoint)
    variables = json.loads(ENV_JSON.read_text())["Parameters"]

    session = session_for(endpoint, REGION)
    # By name: moto gives the ARN a random suffix on every start.
    session.client("secretsmanager").describe_secret(SecretId=variables["BROKER_STATE_KEY_SECRET_ID"])
    queue = variables["BROKER_REFRESH_QUEUE_URL"].rsplit("/", 1)[-1]
    assert session.client("sqs").get_queue_url(QueueName=queue)
    assert variables["AWS_ENDPOINT_URL"] == "http://host.docker.internal:5000"
    assert json.loads(variables["BROKER_ZOHO_ACCOUNTS_SERVERS"]) == {
        "us": "http://host.docker.internal:9001",
        "eu": "http://host.docker.internal:9002",
    }


# Runs in a process of its own: importing samcli registers CloudFormation tags on yaml.SafeLoader for
# the whole process, which other tests check stays untouched.
SAM_LOCAL_ENVIRONMENTS = """
import json, sys, warnings
warnings.simplefilter("ignore")
from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

template, env_json, region = sys.argv[1:4]
stacks, _ = SamLocalStackProvider.get_stacks(template)
provider = SamFunctionProvider(stacks)
runner = LocalLambdaRunner(None, provider, cwd=".", real_path=".", aws_region=region,
                           env_vars_values=json.load(open(env_json)))
print(json.dumps({f.name: runner._make_env_vars(f).resolve() for f in provider.get_all()}))
"""


def test_sam_local_passes_every_env_json_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """sam local passes only the variables the template declares; the rest of env.json would be ignored."""
    # Given env.json, when sam local resolves the functions' environments, then every value arrives.
    use_credentials(monkeypatch, "local", "local")
    monkeypatch.setenv("SAM_CLI_TELEMETRY", "0")
    overrides = json.loads(ENV_JSON.read_text())["Parameters"]

    result = subprocess.run(
        [sys.executable, "-c", SAM_LOCAL_ENVIRONMENTS, str(ROOT / "template.yaml"), str(ENV_JSON), REGION],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    environments: dict[str, dict[str, str]] = json.loads(result.stdout)
    assert {"StartFunction", "CallbackFunction", "AdminFunction", "RefresherFunction"} <= set(environments)
    assert "RefreshWorkerFunction" in environments
    for function, environment in environments.items():
        missing = sorted(name for name, value in overrides.items() if environment.get(name) != value)
        assert not missing, f"{function}: sam local would not pass {missing}"

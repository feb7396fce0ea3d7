"""Shared fixtures: AWS from template.yaml in moto, the Zoho stand-in over real HTTP, and the routes
served by the Lambda handlers through the local gateway."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from moto import mock_aws

from broker_local.functions import function_environment, http_routes
from broker_local.gateway import LocalApiGateway
from broker_local.moto_atomic import make_dynamodb_atomic
from broker_local.runner import Options, free_port, running_broker
from broker_local.template import Stack, load_template, provision, resolve
from broker_local.zoho_standin import ZohoStandIn
from tests.aws_env import use_credentials
from tests.sam_build import SamBuild, build_stack

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = load_template(ROOT / "template.yaml")
# The alarms, their topic and the dashboard: template.yaml's nested stack Monitoring.
MONITORING = load_template(ROOT / "monitoring.yaml")

# Powertools reads its service name and metrics namespace when the broker's modules are imported, which
# in a Lambda happens after the template's Globals are in the environment: do the same here.
_GLOBALS = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
for _name in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"):
    os.environ.setdefault(_name, str(resolve(_GLOBALS[_name], Stack.from_template(TEMPLATE))))

from tests import error_catalogue, log_catalogue  # noqa: E402
from zoho_broker.services import reset_services  # noqa: E402


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def log_lines_follow_the_catalogue() -> Iterator[None]:
    """Every line the broker logs in any test is in docs/operations.md's catalogue, level and fields."""
    kept = _Kept()
    logging.getLogger().addHandler(kept)
    yield
    logging.getLogger().removeHandler(kept)
    problems = {found for record in kept.records if (found := log_catalogue.problem(record))}
    assert not problems, "\n".join(sorted(problems))


@pytest.fixture(autouse=True)
def errors_follow_the_catalogue() -> Iterator[None]:
    """Every error the broker makes in any test is in docs/errors.md: status, code and sentence."""
    with error_catalogue.errors_made() as made:
        yield
    problems = {found for error in made if (found := error_catalogue.problem(error))}
    assert not problems, "\n".join(sorted(problems))


@pytest.fixture(scope="session")
def sam_build(tmp_path_factory: pytest.TempPathFactory) -> SamBuild:
    """template.yaml built as `sam build` ships it, once for the session (tests/build, tests/samlocal)."""
    return build_stack(tmp_path_factory.mktemp("sam"))


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Moto's test keys in eu-west-1, and none of the machine's AWS settings."""
    use_credentials(monkeypatch, region="eu-west-1")


@pytest.fixture
def stack(aws_credentials: None) -> Iterator[Stack]:
    """Every table and secret of template.yaml, created in moto (atomic per request, as DynamoDB is)."""
    make_dynamodb_atomic()
    with mock_aws():
        reset_services()
        yield provision(TEMPLATE)
        reset_services()


@pytest.fixture
def zoho() -> Iterator[ZohoStandIn]:
    with ZohoStandIn({"us": 0, "eu": 0}) as standin:
        yield standin


@pytest.fixture
def broker_env(stack: Stack, zoho: ZohoStandIn, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The functions' environment as template.yaml resolves it, pointed at the Zoho stand-in."""
    # The shared Globals and each function's own variables (ProxyFunction's throttle table).
    env = {
        **function_environment(TEMPLATE, stack, "CallbackFunction"),
        **function_environment(TEMPLATE, stack, "ProxyFunction"),
    }
    env["BROKER_ZOHO_ACCOUNTS_SERVERS"] = json.dumps(zoho.accounts_servers)
    # httpx, like any client, sends no Secure cookie over plain http; the attribute is tested on its own.
    env["BROKER_COOKIE_SECURE"] = "false"
    env["BROKER_ZOHO_TIMEOUT_SECONDS"] = "2"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_services()
    return env


@pytest.fixture
def gateway(broker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalApiGateway]:
    with LocalApiGateway(http_routes(TEMPLATE), ROOT, port=0) as running:
        monkeypatch.setenv("BROKER_PUBLIC_BASE_URL", running.base_url)
        reset_services()
        yield running


@pytest.fixture
def browser(gateway: LocalApiGateway) -> Iterator[httpx.Client]:
    """One browser: a cookie jar shared by the broker and the Zoho stand-in."""
    with httpx.Client(base_url=gateway.base_url, follow_redirects=False, timeout=10) as client:
        yield client


@pytest.fixture
def admin(gateway: LocalApiGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
        yield client


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((ROOT / "events" / name).read_text())
    return event


@contextmanager
def local_runner(**options: Any) -> Iterator[dict[str, Any]]:
    """The whole local runner as `make dev` starts it (no demo subscriptions) on free ports; ``options``
    replace fields of its Options.

    It sets os.environ for its handlers; the environment is restored afterwards.
    """
    saved = dict(os.environ)
    reset_services()
    chosen = Options(
        port=free_port("127.0.0.1"),
        standin_ports=(free_port("127.0.0.1"), free_port("127.0.0.1")),
        demo=False,
        # The template's level: Powertools fixes a logger's level when a handler first imports it, and
        # later test modules read INFO records from those loggers.
        log_level="INFO",
    )
    chosen = dataclasses.replace(chosen, **options)
    try:
        with running_broker(chosen) as started:
            yield started
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_services()

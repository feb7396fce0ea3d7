"""What the CLI tests share: the runner they talk to, a run's outcome, and a subscription made with the CLI."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker_local.runner import free_port
from broker_local.zoho_standin import ZohoStandIn

CLIENT_SECRET = "cli-client-secret-0123456789abcdef"
MASKED_SECRET = f"cli-…({len(CLIENT_SECRET)} chars)"


@dataclass(frozen=True)
class Broker:
    url: str
    accounts_servers: dict[str, str]
    zoho: ZohoStandIn


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Ran]


class Terminal(io.StringIO):
    """Standard input as if a person sat at a terminal, with these lines typed."""

    def isatty(self) -> bool:
        return True


def create_subscription(cli: Cli, *extra: str, name: str | None = None) -> dict[str, Any]:
    name = name or f"Acme CRM {uuid.uuid4().hex[:8]}"
    ran = cli(
        "--json",
        "subscriptions",
        "create",
        "--name",
        name,
        "--integration",
        "zoho-crm",
        "--client-id",
        "1000.CLICLIENT0123456789",
        "--client-secret-stdin",
        *extra,
        stdin=CLIENT_SECRET + "\n",
    )
    assert ran.code == 0, ran.err
    created: dict[str, Any] = ran.json()
    return created


def closed_port() -> int:
    return free_port("127.0.0.1")  # bound and released: nothing listens there

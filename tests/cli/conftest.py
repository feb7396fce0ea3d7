"""The local runner the `broker` CLI tests talk to, once per module, and the CLI run in this process."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from broker_cli.main import main
from broker_local.zoho_standin import ZohoStandIn
from tests.conftest import local_runner


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


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    """The whole local runner on free ports, once for this module."""
    with local_runner() as started:
        url = started["gateway"].base_url
        # Load the admin handler (and the loggers) now, outside any test's captured stdout.
        httpx.get(f"{url}/admin/integrations", timeout=30).raise_for_status()
        yield Broker(url=url, accounts_servers=started["accounts_servers"], zoho=started["standin"])


@pytest.fixture
def cli(broker: Broker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`broker --url <runner> ARGS` in this process, with stdin given, stdout and stderr captured."""

    def run(*args: str, stdin: str | io.StringIO = "", url: str | None = None) -> Ran:
        monkeypatch.setattr(sys, "stdin", stdin if isinstance(stdin, io.StringIO) else io.StringIO(stdin))
        capsys.readouterr()
        code = main(["--url", url or broker.url, *args])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run

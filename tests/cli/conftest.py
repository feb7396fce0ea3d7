"""The local runner the CLI talks to, once per module, and `broker ARGS` run in this process."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest
from running import Broker, Ran

from broker_cli.main import main
from tests.conftest import local_runner


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    """The whole local runner on free ports, once for this module."""
    with local_runner() as started:
        url = started["gateway"].base_url
        # Load the admin handler (and the loggers) now, outside any test's captured stdout.
        httpx.get(f"{url}/admin/integrations", timeout=30).raise_for_status()
        yield Broker(url=url, accounts_servers=started["accounts_servers"], zoho=started["standin"])


@pytest.fixture
def cli(
    broker: Broker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Ran]:
    """`broker --url <runner> ARGS` in this process, with stdin given, stdout and stderr captured."""

    def run(*args: str, stdin: str | io.StringIO = "", url: str | None = None) -> Ran:
        monkeypatch.setattr(sys, "stdin", stdin if isinstance(stdin, io.StringIO) else io.StringIO(stdin))
        capsys.readouterr()
        code = main(["--url", url or broker.url, *args])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run

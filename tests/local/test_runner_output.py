"""What a newcomer sees in the terminal: `python -m broker_local` as the README says to run it.

The runner runs as its own process (as `make dev` starts it) on free ports; its output is read line by
line while requests are made and refresh runs pass.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broker_local.runner import free_port

ROOT = Path(__file__).resolve().parents[2]
REQUEST_LINE = re.compile(r"^(GET|POST|PATCH|DELETE|HEAD) /\S* \d{3} \d+ms$")
REFRESH_LINE = re.compile(r"^RefresherFunction ran: \{'due': \d+, 'refreshed_inline': \d+, 'queued': \d+\}$")


def _newcomer_environment() -> dict[str, str]:
    """A shell as a newcomer has it: no PYTHONPATH (make sets one; the README's command does not)."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "BROKER_"))
    }
    environment.pop("PYTHONPATH", None)
    return environment


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-u", "-m", "broker_local", *args],
        cwd=ROOT,
        env=_newcomer_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker_local", *args],
        cwd=ROOT,
        env=_newcomer_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def runner_lines() -> Iterator[tuple[str, subprocess.Popen[str], list[str]]]:
    port = free_port("127.0.0.1")
    ports = f"{free_port('127.0.0.1')},{free_port('127.0.0.1')}"
    process = _start("--port", str(port), "--standin-ports", ports, "--refresh-interval", "2")
    lines: list[str] = []
    try:
        yield f"http://127.0.0.1:{port}", process, lines
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _read_until(process: subprocess.Popen[str], lines: list[str], pattern: str, count: int = 1) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    while sum(1 for line in lines if pattern in line) < count:
        assert time.monotonic() < deadline, "\n".join(lines)
        line = process.stdout.readline()
        assert line, "the runner stopped:\n" + "\n".join(lines)
        lines.append(line.rstrip("\n"))


def test_default_output_is_one_line_per_request_and_per_refresh_run(
    runner_lines: tuple[str, subprocess.Popen[str], list[str]],
) -> None:
    base_url, process, lines = runner_lines
    _read_until(process, lines, "Press Ctrl+C to stop.")
    banner = len(lines)

    for _ in range(3):
        httpx.get(f"{base_url}/admin/subscriptions", timeout=30).raise_for_status()
    httpx.get(f"{base_url}/", timeout=30).raise_for_status()
    _read_until(process, lines, "RefresherFunction ran", count=3)

    after = [line for line in lines[banner:] if line.strip()]
    requests = [line for line in after if REQUEST_LINE.match(line)]
    refreshes = [line for line in after if REFRESH_LINE.match(line)]
    assert len(refreshes) == 3
    # The three reads and the console: its own calls to the admin API are not lines of their own.
    assert len(requests) == 4, after
    assert after == [line for line in after if REQUEST_LINE.match(line) or REFRESH_LINE.match(line)], after
    # The banner: what to open, and nothing from the libraries underneath.
    assert banner < 30, "\n".join(lines[:banner])
    text = "\n".join(lines)
    for noise in ("Found endpoint", "Found credentials", '"_aws"', "Warning", "Traceback"):
        assert noise not in text


def test_a_port_in_use_is_named_with_the_option_that_picks_another() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = _run("--port", str(port), "--no-demo")

    assert ran.returncode == 2
    assert "Traceback" not in ran.stderr
    assert f"Port {port} on 127.0.0.1 is already in use" in ran.stderr
    assert f'make dev ARGS="--port {port + 1}"' in ran.stderr


def test_a_stand_in_port_in_use_names_the_stand_in_option() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = free_port("127.0.0.1")
        ran = _run("--port", str(free_port("127.0.0.1")), "--standin-ports", f"{other},{port}")

    assert ran.returncode == 2
    assert f"Port {port} on 127.0.0.1 is already in use" in ran.stderr
    assert "--standin-ports" in ran.stderr


def test_help_works_as_the_readme_runs_it() -> None:
    ran = _run("--help")

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("usage: python -m broker_local")
    for option in ("--port", "--standin-ports", "--log-level", "--no-demo", "--real-zoho"):
        assert option in ran.stdout

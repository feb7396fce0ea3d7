"""Where Docker cannot run, `python -m samlocal up` and tests/samlocal say why: skipped locally, failing
under CI=true. Simulated with a PATH that holds neither docker nor dockerd (the virtualenv's only)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# As root the engine would start dockerd and cannot find it; as another user it may not start one.
NO_DOCKER = "dockerd cannot be started" if os.geteuid() == 0 else ""


def run_without_docker(ci: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    python = Path(sys.executable)
    environment = {
        "HOME": os.environ.get("HOME", "/root"),
        "PATH": str(python.parent),  # no docker, no dockerd
        "PYTHONPATH": os.pathsep.join(str(ROOT / part) for part in ("layers/broker", "local")),
        "CI": ci,
    }
    return subprocess.run(
        [str(python), *arguments], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(("ci", "exit_code"), [("false", 0), ("true", 1)])
def test_samlocal_up_without_docker_says_why_and_fails_only_under_ci(ci: str, exit_code: int) -> None:
    result = run_without_docker(ci, "-m", "samlocal", "up")

    assert result.returncode == exit_code, result.stderr
    assert f"not available: {NO_DOCKER}" in result.stderr


@pytest.mark.parametrize(("ci", "outcome"), [("false", "skipped"), ("true", "errors")])
def test_samlocal_tests_without_docker_skip_with_the_reason_or_fail_under_ci(ci: str, outcome: str) -> None:
    tests = [str(ROOT / "tests" / "samlocal" / name) for name in ("test_invoke.py", "test_start_api.py")]
    collected = run_without_docker(
        ci, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--collect-only", *tests
    )
    total = int(re.search(r"(\d+) tests? collected", collected.stdout).group(1))  # type: ignore[union-attr]

    result = run_without_docker(ci, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *tests)

    # All but one need the stack (that one checks the template's list of functions against the invokes).
    assert f"1 passed, {total - 1} {outcome}" in result.stdout, result.stdout[-3000:]
    assert f"sam local cannot run here: {NO_DOCKER}" in result.stdout
    assert ("CI=true: it must run" in result.stdout) == (ci == "true")

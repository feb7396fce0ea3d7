"""The habits style.md asks for hold on every change: mypy (strict, pyproject.toml's packages) and ruff
(lint and format) are clean. `make lint` and `make typecheck` run the same; here they are part of
`make test`, so CI refuses a change that breaks them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "command",
    [["mypy"], ["ruff", "check", "."], ["ruff", "format", "--check", "."]],
    ids=["mypy", "ruff check", "ruff format"],
)
def test_the_code_passes_its_static_checks(command: list[str]) -> None:
    checked = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr

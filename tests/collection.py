"""A pytest plugin: a whole-suite run fails when a test folder has test files but nothing was collected.

pytest skips some folder names silently (its default norecursedirs once hid tests/build), so a folder of
tests can drop out of `make test` without anyone noticing. Loaded from pyproject.toml's addopts.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def uncollected_folders(test_root: Path, collected: Iterable[Path]) -> list[Path]:
    """Folders under test_root holding test_*.py files of which no test was collected."""
    with_tests = {path.parent for path in test_root.rglob("test_*.py") if "__pycache__" not in path.parts}
    seen = {path.parent for path in collected}
    return sorted(with_tests - seen)


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect: a deselected folder was still collected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if {Path(argument).resolve() for argument in config.args} != {TESTS}:
        return  # a chosen subset of the suite
    missing = uncollected_folders(TESTS, (item.path for item in items))
    if missing:
        names = ", ".join(str(path.relative_to(TESTS.parent)) for path in missing)
        raise pytest.UsageError(f"test folders with test files but no collected tests: {names}")

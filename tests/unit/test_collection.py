"""The whole-suite guard against test folders that pytest silently skips."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.collection import uncollected_folders


def test_a_folder_whose_tests_were_not_collected_is_named(tmp_path: Path) -> None:
    for folder in ("unit", "build", "build/nested"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "test_something.py").write_text("def test_it():\n    pass\n")
    (tmp_path / "helpers").mkdir()
    (tmp_path / "helpers" / "fixtures.py").write_text("")

    missing = uncollected_folders(tmp_path, [tmp_path / "unit" / "test_something.py"])

    assert missing == [tmp_path / "build", tmp_path / "build" / "nested"]


def test_a_whole_suite_run_that_skips_a_test_folder_fails_and_names_it() -> None:
    root = Path(__file__).resolve().parents[2]

    # pytest's own default skips folders named build, which once hid tests/build from `make test`.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-o", "norecursedirs=build .* .aws-sam"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert "test folders with test files but no collected tests: tests/build" in run.stderr

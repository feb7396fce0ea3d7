"""`sam build` of template.yaml as it ships, once per test session (tests/build checks it, tests/samlocal
runs it). Without a container it needs the runtime's interpreter (python3.13) on PATH; when there is none
the tests that need the build fail, they do not skip: a build that cannot be checked is not a passing build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


def venv_tool(name: str) -> str:
    """A console script of the environment running the tests (the project's .venv)."""
    for candidate in (Path(sys.executable).parent / name, ROOT / ".venv" / "bin" / name):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run `make .venv/bin/.installed`", pytrace=False)
    return found


def find_python313() -> Path | None:
    """The interpreter sam build needs, looked for as the Makefile's PYTHON313 does: pyenv, then PATH."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = sorted(pyenv_root.glob("versions/3.13*/bin/python3.13"), reverse=True)
    on_path = shutil.which("python3.13")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        try:
            subprocess.run([candidate, "-c", "import sys"], capture_output=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            continue
        return candidate
    return None


@dataclass(frozen=True)
class SamBuild:
    build_dir: Path
    problem: str  # empty when the build succeeded

    def require(self) -> Path:
        """The build output, or the test fails with what went wrong."""
        if self.problem:
            pytest.fail(self.problem, pytrace=False)
        return self.build_dir


def build_stack(workdir: Path) -> SamBuild:
    """sam build of the template into workdir/build (its cache in workdir/cache)."""

    build_dir = workdir / "build"
    python313 = find_python313()
    if python313 is None:
        return SamBuild(
            build_dir,
            "python3.13 was found neither in pyenv ($PYENV_ROOT/versions/3.13*) nor on PATH: sam build "
            "without a container needs the Lambda runtime's interpreter. Install it (pyenv install 3.13) "
            "or put it on PATH.",
        )
    env = {
        **os.environ,
        "PATH": f"{python313.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SAM_CLI_TELEMETRY": "0",
    }
    command = [
        venv_tool("sam"),
        "build",
        "--template-file",
        str(TEMPLATE),
        "--build-dir",
        str(build_dir),
        "--cache-dir",
        str(workdir / "cache"),
        "--parallel",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        output = f"{result.stdout}\n{result.stderr}"
        return SamBuild(build_dir, f"sam build failed (exit {result.returncode}) with {python313}:\n{output}")
    return SamBuild(build_dir, "")

"""The template lints, and `sam build` without a container makes what Lambda on arm64 needs.

sam build runs once for the module, into a temporary directory. Without a container it needs the runtime's
interpreter (python3.13) on PATH; when there is none the build tests fail, they do not skip: a build that
cannot be checked is not a passing build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.cold_start import built_sizes

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
FUNCTIONS = ("StartFunction", "CallbackFunction", "AdminFunction")
LAYER = "CoreLayer"
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")  # the Lambda runtime carries them
EM_AARCH64 = 183
MACHINES = {3: "x86", 40: "ARM", 62: "x86-64", 183: "AArch64"}
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


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


@pytest.fixture(scope="module")
def sam_build(tmp_path_factory: pytest.TempPathFactory) -> SamBuild:
    workdir = tmp_path_factory.mktemp("sam")
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


def elf_machine(path: Path) -> int | None:
    """e_machine of an ELF file (little-endian, bytes 18-19 of the header), None when it is not ELF."""
    with path.open("rb") as stream:
        header = stream.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little")


def shared_objects(directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file() and (path.suffix == ".so" or ".so." in path.name)
    )


def test_given_the_template_when_cfn_lint_runs_then_it_reports_nothing() -> None:
    result = subprocess.run(
        [venv_tool("cfn-lint"), str(TEMPLATE)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, f"cfn-lint exited {result.returncode}:\n{result.stdout}\n{result.stderr}"


def test_given_no_container_when_sam_builds_then_it_succeeds(sam_build: SamBuild) -> None:
    build_dir = sam_build.require()

    assert (build_dir / "template.yaml").is_file()


def test_given_the_build_then_every_function_has_its_handler(sam_build: SamBuild) -> None:
    build_dir = sam_build.require()

    missing = [function for function in FUNCTIONS if not (build_dir / function / "app.py").is_file()]

    assert not missing, (
        f"no app.py in the built {missing}; built: {sorted(p.name for p in build_dir.iterdir())}"
    )


def test_given_the_build_then_the_layer_holds_the_core_package_and_pydantic_core(sam_build: SamBuild) -> None:
    python = sam_build.require() / LAYER / "python"

    assert (python / "zoho_broker" / "integrations.json").is_file()
    assert (python / "pydantic_core").is_dir()


def test_given_the_build_then_every_shared_object_in_the_layer_is_aarch64(sam_build: SamBuild) -> None:
    layer = sam_build.require() / LAYER

    found = shared_objects(layer)
    machines = {path.relative_to(layer).as_posix(): elf_machine(path) for path in found}
    wrong = {
        name: "not ELF" if machine is None else MACHINES.get(machine, f"e_machine {machine}")
        for name, machine in machines.items()
        if machine != EM_AARCH64
    }

    assert found, "the layer has no .so at all; pydantic_core should bring one"
    assert not wrong, f"not built for arm64 (BuildArchitecture: arm64 missing?): {wrong}"


def test_given_the_build_then_the_layer_leaves_boto3_to_the_runtime(sam_build: SamBuild) -> None:
    python = sam_build.require() / LAYER / "python"

    bundled = sorted(entry.name for entry in python.iterdir() if entry.name.startswith(RUNTIME_PROVIDED))

    assert not bundled, f"the Lambda runtime provides these, the layer should not: {bundled}"


def test_given_the_build_then_functions_carry_no_third_party_packages(sam_build: SamBuild) -> None:
    build_dir = sam_build.require()

    extra = {
        function: sorted(entry.name for entry in (build_dir / function).iterdir())
        for function in FUNCTIONS
        if {entry.name for entry in (build_dir / function).iterdir()} - {"app.py", "__pycache__"}
    }

    assert not extra, f"functions should hold only app.py (dependencies belong in the layer): {extra}"


def test_given_the_build_then_the_sizes_fit_lambda(
    sam_build: SamBuild, capsys: pytest.CaptureFixture[str]
) -> None:
    sizes = built_sizes(sam_build.require())

    with capsys.disabled():
        shown = ", ".join(f"{name} {size / 1024 / 1024:.2f} MB" for name, size in sizes.items())
        print(f"\nsam build sizes (unzipped): {shown}")
    assert set(FUNCTIONS) | {LAYER} <= set(sizes), sizes
    for function in FUNCTIONS:
        assert sizes[function] < 1024 * 1024, (
            f"{function} is {sizes[function]} bytes; only app.py belongs there"
        )
        assert sizes[function] + sizes[LAYER] < LAMBDA_UNZIPPED_LIMIT
    assert sizes[LAYER] > 1024 * 1024, (
        f"the layer is only {sizes[LAYER]} bytes; are its dependencies missing?"
    )

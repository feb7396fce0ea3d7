"""Mutation testing of the broker's core with mutmut: `make mutation` (not part of `make test`: hours).

    python -m tests.mutation [--scope logic,store,state,data_centres,zoho_client] [--children 2]
                             [--tests tests/unit,tests/integration,tests/faults,tests/standin]

mutmut names a mutant after the module path it finds from its working directory, and the broker's
package lives in layers/broker/ (as the Lambda layer ships it). So the run happens in a staged copy of
the project's tracked files where zoho_broker/ sits at the top, under ~/.cache/zoho-broker/mutation, with
its own virtualenv (mutmut needs a newer click than the SAM CLI pins; the tests it runs need no SAM).
Tests run: unit, integration, faults and the stand-in's (mutmut runs, for each mutant, only the tests
that reached the mutated function). Not the command-line tool's: see TESTS. Printed: the score (killed of all mutants tried, one that no test
reaches counting as a survivor) and every survivor.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path.home() / ".cache" / "zoho-broker" / "mutation"
MUTMUT = "mutmut==3.8.1"
# What mutmut cannot use (or that conflicts with it) and the mutated tests do not need.
NOT_NEEDED = ("aws-sam-cli", "cfn-lint", "playwright", "mypy", "boto3-stubs")
SCOPES = {
    "logic": "zoho_broker/logic/*",
    "store": "zoho_broker/store/*",
    "state": "zoho_broker/state.py",
    "data_centres": "zoho_broker/data_centres.py",
    "zoho_client": "zoho_broker/zoho_client.py",
}
# Not tests/cli: run after the integration and fault tests, as here, one of its tests found a
# "--- Logging error ---" from the broker's logger on the command's stderr and mutmut's clean run stopped
# (in `make test` they run first and pass). Until that is understood, mutation runs leave them out.
TESTS = ["tests/unit", "tests/integration", "tests/faults", "tests/standin"]
# Measures rates across four processes: timing that cannot hold while mutmut's trampolines slow every
# call. The throttle is still reached in-process, by tests/unit/test_throttle.py and tests/integration/test_proxy.py.
# Read the source's logger calls and errors, which mutmut's copy holds once per mutant; every test still
# checks the lines really logged and the errors really made against the catalogues (tests/conftest.py).
IGNORED = [
    "tests/integration/test_throttle_processes.py",
    "tests/unit/test_log_catalogue.py",
    "tests/unit/test_error_catalogue.py",
]
# Run the `broker` console script that `make` installs into the project's .venv: mutmut's virtualenv has
# none (an installed one would import the unmutated package, in a process of its own). For `--tests` with
# tests/cli.
DESELECTED = [
    "tests/cli/test_cli.py::test_the_installed_console_script_creates_and_lists",
    "tests/cli/test_cli.py::test_the_installed_console_script_exits_3_when_the_broker_is_down",
]


def requirements() -> list[str]:
    """requirements-dev.txt's lines without the tools the mutation run does not need, the layer's included."""
    lines = []
    for path in (ROOT / "layers" / "broker" / "requirements.txt", ROOT / "requirements-dev.txt"):
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "-r")) and not line.startswith(NOT_NEEDED):
                lines.append(line)
    return [*lines, MUTMUT]


def virtualenv() -> Path:
    """A virtualenv for the run, made once per set of requirements."""
    wanted = requirements()
    key = hashlib.sha256("\n".join([sys.version, *wanted]).encode()).hexdigest()[:12]
    venv = CACHE / f"venv-{key}"
    python = venv / "bin" / "python"
    if not (venv / ".ready").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *wanted], check=True)
        (venv / ".ready").touch()
    return venv


def stage(scope: list[str], tests: list[str]) -> Path:
    """The project's tracked files, with zoho_broker/ moved to the top and mutmut's settings added."""
    staged = CACHE / "stage"
    shutil.rmtree(staged, ignore_errors=True)
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        source = ROOT / name
        if source.is_file():
            target = staged / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    shutil.move(staged / "layers" / "broker" / "zoho_broker", staged / "zoho_broker")
    shutil.rmtree(staged / "layers")  # nothing else may offer a second, unmutated zoho_broker
    settings = {
        "source_paths": ["zoho_broker"],
        "only_mutate": [SCOPES[name] for name in scope],
        "also_copy": [
            "local",
            "clients",
            "template.yaml",
            "monitoring.yaml",
            "functions",
            "events",
            "env.json",
            "docs",
        ],
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": [
            "-p",
            "no:cacheprovider",
            "-q",
            *(f"--ignore={path}" for path in IGNORED),
            *(f"--deselect={test}" for test in DESELECTED),
        ],
    }
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    with (staged / "pyproject.toml").open("a", encoding="utf-8") as stream:
        stream.write("\n[tool.mutmut]\n" + "\n".join(lines) + "\n")
    return staged


def mutant_names(staged: Path) -> list[str]:
    """Every mutant mutmut generated in the staged copy (its .meta files name them)."""
    names: list[str] = []
    for meta in sorted((staged / "mutants").rglob("*.meta")):
        names.extend(json.loads(meta.read_text())["exit_code_by_key"])
    return names


def statuses(mutmut: str, staged: Path, env: dict[str, str]) -> dict[str, str]:
    """Each mutant's status as mutmut reports it: killed, survived, no tests, timeout, not checked, ..."""
    results = subprocess.run(
        [mutmut, "results", "--all", "true"], cwd=staged, env=env, capture_output=True, text=True, check=True
    )
    pairs = (line.strip().rpartition(": ") for line in results.stdout.splitlines() if ": " in line)
    return {name: status for name, _, status in pairs}


def wilson_interval(killed: int, tested: int) -> tuple[float, float]:
    """The score's 95% interval when the mutants tested are a random sample of all of them."""
    z, share = 1.96, killed / tested
    centre = (share + z * z / (2 * tested)) / (1 + z * z / tested)
    spread = (
        z * math.sqrt(share * (1 - share) / tested + z * z / (4 * tested * tested)) / (1 + z * z / tested)
    )
    return centre - spread, centre + spread


# A mutant no test reaches survives as surely as one the tests run past: both count against the score.
UNCAUGHT = ("survived", "no tests")


def report(scope: list[str], status_by_name: dict[str, str], sampled: bool) -> None:
    counts = collections.Counter(status_by_name.values())
    killed = counts["killed"] + counts["timeout"]
    judged = killed + sum(counts[status] for status in UNCAUGHT)
    what = "a random sample of the mutants" if sampled else "the mutants"
    print(f"\nMutation score over {', '.join(scope)}, {what}: {killed} of {judged} killed", end="")
    if judged:
        low, high = wilson_interval(killed, judged)
        print(
            f" ({100 * killed / judged:.1f}%"
            + (f"; 95% interval {100 * low:.1f}-{100 * high:.1f}%)" if sampled else ")")
        )
    print("  " + "; ".join(f"{status}: {count}" for status, count in sorted(counts.items())))
    print("Survivors, and mutants no test reaches (`mutmut show <name>` in the staged copy shows the diff):")
    for name, status in sorted(status_by_name.items()):
        if status in UNCAUGHT:
            print(f"  {name} ({status})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scope", default=",".join(SCOPES), help=f"comma-separated, of {', '.join(SCOPES)}")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--tests", default=",".join(TESTS), help="comma-separated test folders to run")
    parser.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="test N mutants drawn at random (seeded) from the staged copy a full run left (stopped as soon as "
        "it prints 'Running stats' will do), and estimate the score",
    )
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    options = parser.parse_args(argv)
    scope = [name.strip() for name in options.scope.split(",") if name.strip()]
    unknown = sorted(set(scope) - set(SCOPES))
    if unknown:
        parser.error(f"unknown scope {', '.join(unknown)}: choose from {', '.join(SCOPES)}")
    mutmut = str(virtualenv() / "bin" / "mutmut")
    env = {**os.environ, "PYTHONPATH": "", "PYTHONDONTWRITEBYTECODE": "1"}
    command = [mutmut, "run", "--max-children", str(options.children)]
    if options.sample:
        # A full run's mutants and its record of which tests reach which function are reused as they are.
        staged = CACHE / "stage"
        names = [name for name in mutant_names(staged) if any(name.startswith(p) for p in prefixes(scope))]
        if not names:
            # mutmut collects the stats itself if the full run was stopped before it saved them.
            print("No staged mutants: run `make mutation` first, at least until it is 'Running stats'.")
            return 1
        # The same seed draws the same mutants first, so a smaller or interrupted sample resumes: mutmut
        # reruns every mutant it is given by name, so only those not yet tested are given.
        chosen = random.Random(options.seed).sample(names, min(options.sample, len(names)))
        known = statuses(mutmut, staged, env)
        pending = [name for name in chosen if known.get(name, "not checked") == "not checked"]
        if pending:
            subprocess.run([*command, *pending], cwd=staged, env=env)
        status_by_name = {
            name: status for name, status in statuses(mutmut, staged, env).items() if name in chosen
        }
    else:
        staged = stage(scope, [name.strip() for name in options.tests.split(",") if name.strip()])
        run = subprocess.run(command, cwd=staged, env=env)
        if not (staged / "mutants" / "mutmut-stats.json").exists():
            print(f"mutmut did not get to test any mutant (exit {run.returncode}): see its output above")
            return 1
        status_by_name = statuses(mutmut, staged, env)
    report(scope, status_by_name, sampled=bool(options.sample))
    print(f"Staged copy: {staged}")
    return 0


def prefixes(scope: list[str]) -> list[str]:
    """Mutant-name prefixes of the scoped modules (zoho_broker/logic/* -> zoho_broker.logic.)."""
    return [SCOPES[name].removesuffix("*").removesuffix(".py").replace("/", ".") for name in scope]


if __name__ == "__main__":
    sys.exit(main())

"""Cold start of the start and callback functions as built, against yardsticks, in one run.

Every measurement is a fresh Python process laid out like Lambda, on an interpreter that holds boto3 and
botocore alone (a venv of this Python made once under ~/.cache/zoho-broker-bench, with boto3 pinned as in
requirements-dev.txt): the function's directory first on sys.path (and as the working directory), then the
built layer (/opt/python), then the runtime's boto3. The process imports `app` and invokes `app.handler`
once with an HTTP API v2 event against a moto server provisioned from template.yaml and the Zoho stand-in
(real HTTP), so the first invoke pays for its clients, its AWS and Zoho calls and any import it defers.
No bytecode is written (Lambda's code directories are read-only): only the .pyc files built in are used.

Yardsticks, on the same interpreter and backend:
- bare: imports boto3 and creates two clients (benchmarks/yardsticks/bare); the functions' import time
  is compared with its import time;
- minimal start and callback: the same AWS calls and, for the callback, the same token exchange at the
  Zoho stand-in, written by hand with boto3 and the standard library (benchmarks/yardsticks/<job>).
- the floor: each minimal handler with the fixed design's libraries from the built layer (pydantic
  imported and one model validated; httpx imported by the callback), nothing of the broker's own
  (benchmarks/yardsticks/floor): where any function built on the fixed design starts, against
  the 1.25x goal.
  `--profile N` lists the AWS calls each one and each function makes, so a difference shows.

    python benchmarks/cold_start.py [--runs 7] [--build-dir [LABEL=]DIR ...] [--profile N]

--build-dir defaults to .aws-sam/build (`make build`); repeat it with labels to compare builds of several
commits (the steps of an optimisation) in one run. It also prints the built sizes of the last build.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or imported by tests
from cold_start_setup import (
    LAMBDA_UNZIPPED_LIMIT,
    LAYER_SOURCE,
    MB,
    ROOT,
    YARDSTICKS,
    broker_backend,
    built_sizes,
    callback_event,
    child_env,
    lambda_like_layer,
    runtime_interpreter,
    start_event,
    zipped_size,
)
from harness.table import print_table

# Runs in the fresh process, via `python -c`. Reading the event comes first: the Lambda runtime has
# done that before it loads the handler.
RUNNER = """
import json, sys, time

function_dir, event_path, result_path = sys.argv[1:4]
sys.path[0] = function_dir
with open(event_path, encoding="utf-8") as stream:
    event = json.load(stream)


class Context:
    function_name = "cold-start-benchmark"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:cold-start-benchmark"
    memory_limit_in_mb = 512
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/cold-start-benchmark"
    log_stream_name = "2026/01/01/[$LATEST]0"

    def get_remaining_time_in_millis(self):
        return 15000


started = time.perf_counter()
import app
imported = time.perf_counter()
profiler = None
calls = []
if len(sys.argv) > 4:  # --profile: this run is not measured, only looked into
    import cProfile
    import botocore.client

    api_call = botocore.client.BaseClient._make_api_call

    def recorded(client, operation, params):
        calls.append(f"{client.meta.service_model.service_name} {operation}")
        return api_call(client, operation, params)

    botocore.client.BaseClient._make_api_call = recorded
    profiler = cProfile.Profile()
    profiler.enable()
response = app.handler(event, Context())
invoked = time.perf_counter()
if profiler is not None:
    profiler.disable()
    profiler.dump_stats(sys.argv[4])
with open(result_path, "w", encoding="utf-8") as stream:
    json.dump(
        {
            "import_ms": (imported - started) * 1000,
            "first_invoke_ms": (invoked - imported) * 1000,
            "total_ms": (invoked - started) * 1000,
            "answered_at": time.time(),
            "status": response.get("statusCode"),
            "body_head": str(response.get("body", ""))[:300],
            "aws_calls": calls,
        },
        stream,
    )
"""

# --------------------------------------------------------------------------------------------------
# One measurement: a fresh process.


@dataclass
class Variant:
    name: str
    function_dir: Path
    env: dict[str, str]
    prepare: Callable[[], dict[str, Any]]  # a fresh event: links and states work once
    expected_status: int
    python: str  # the interpreter: the boto3-only one, as the Lambda runtime has it
    samples: list[dict[str, float]] = field(default_factory=list)


def run_once(
    variant: Variant, workdir: Path, *, importtime: bool = False, profile: Path | None = None
) -> tuple[dict[str, Any], str]:
    """One cold start of the variant in a fresh process; returns its figures and its stderr."""
    event_path = workdir / "event.json"
    result_path = workdir / "result.json"
    event_path.write_text(json.dumps(variant.prepare()), encoding="utf-8")
    result_path.unlink(missing_ok=True)
    command = [variant.python, *(["-X", "importtime"] if importtime else []), "-c", RUNNER]
    command += [str(variant.function_dir), str(event_path), str(result_path)]
    command += [str(profile)] if profile is not None else []
    # Wall clock, which the child shares: perf_counter's origin is per process on some systems.
    launched = time.time()
    finished = subprocess.run(
        command, cwd=variant.function_dir, env=variant.env, capture_output=True, text=True, timeout=120
    )
    if finished.returncode != 0 or not result_path.exists():
        raise SystemExit(
            f"{variant.name}: the process failed (exit {finished.returncode})\n"
            f"--- stdout\n{finished.stdout[-3000:]}\n--- stderr\n{finished.stderr[-3000:]}"
        )
    result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    if result["status"] != variant.expected_status:
        raise SystemExit(
            f"{variant.name}: expected HTTP {variant.expected_status}, got {result['status']}: "
            f"{result['body_head']}\n--- stdout (logs)\n{finished.stdout[-3000:]}"
        )
    # From spawning the process to the handler's answer: interpreter start counts, its exit does not.
    result["process_ms"] = (result.pop("answered_at") - launched) * 1000
    return result, finished.stderr


def importtime_top(stderr: str, top: int) -> list[tuple[int, int, str]]:
    """(cumulative µs, self µs, module) of the slowest imports in `python -X importtime` output."""
    rows: list[tuple[int, int, str]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|", 2)
        rows.append((int(cumulative), int(own), name.strip()))
    return sorted(rows, reverse=True)[:top]


# --------------------------------------------------------------------------------------------------


def median(variant: Variant, column: str) -> float:
    return statistics.median(sample[column] for sample in variant.samples)


def print_medians(variants: list[Variant], runs: int) -> None:
    columns = ("import_ms", "first_invoke_ms", "total_ms", "process_ms")
    print(f"\nMedians of {runs} fresh processes per variant (ms):")
    print_table(
        ["variant", "import", "1st invoke", "total", "process"],
        [[v.name, *(f"{median(v, column):.1f}" for column in columns)] for v in variants],
    )
    print("  total = import + first invoke, timed inside the process;")
    print("  process = from spawning the process to the handler's answer (interpreter start included)")


def print_ratios(yardsticks: dict[str, Variant], builds: list[tuple[str, dict[str, Variant]]]) -> None:
    """One row per build: each function against its hand-written twin, and its import against bare boto3."""
    bare = yardsticks["bare"]
    print(
        "\nCold-start ratios (medians of this run). 'vs minimal': import + first invoke of the function\n"
        "against the hand-written handler making the same calls (goal <= 1.25x); 'import vs bare': the\n"
        "function's import against the bare boto3 handler's import with its clients (goal <= 1.5x)."
    )
    jobs = ("start", "callback")
    header = ["build", *(f"{job} vs minimal" for job in jobs), *(f"{job} import vs bare" for job in jobs)]
    rows = [
        [
            label,
            *(
                f"{median(functions[job], 'total_ms') / median(yardsticks[job], 'total_ms'):.2f}x"
                for job in jobs
            ),
            *(f"{median(functions[job], 'import_ms') / median(bare, 'import_ms'):.2f}x" for job in jobs),
        ]
        for label, functions in builds
    ]
    print_table(header, rows)
    floors = ", ".join(
        f"{job} {median(yardsticks[f'{job} floor'], 'total_ms') / median(yardsticks[job], 'total_ms'):.2f}x"
        for job in jobs
    )
    print(f"The floor (a minimal handler + pydantic, + httpx for the callback) vs minimal: {floors}")


def parse_builds(values: list[str]) -> list[tuple[str, Path]]:
    """``--build-dir [label=]path``: the label names the row (default: the path)."""
    builds = []
    for value in values:
        label, separator, path = value.partition("=")
        if not separator:
            label, path = value, value
        build_dir = Path(path).resolve()
        if not (build_dir / "CoreLayer").is_dir():
            raise SystemExit(f"{build_dir} is not a sam build output (no CoreLayer); run `make build` first")
        builds.append((label, build_dir))
    return builds


def build_variants(
    backend: dict[str, Any], scratch: Path, builds: list[tuple[str, Path]], python: str
) -> tuple[dict[str, Variant], list[tuple[str, dict[str, Variant]]], str]:
    """The yardsticks (bare boto3, and a hand-written start and callback), then each build's functions."""
    functions = backend["functions"]

    start_prepare = functools.partial(start_event, backend)
    jobs = {
        "start": ("StartFunction", start_prepare, 302),
        "callback": ("CallbackFunction", functools.partial(callback_event, backend), 200),
    }
    empty = scratch / "no-layer"
    empty.mkdir()
    yardsticks = {
        "bare": Variant(
            "bare boto3 handler (2 clients)",
            YARDSTICKS / "bare",
            child_env(functions["StartFunction"], layer=empty),
            start_prepare,
            200,
            python,
        )
    }
    for job, (function_id, prepare, status) in jobs.items():
        env = child_env(functions[function_id], layer=empty)
        yardsticks[job] = Variant(
            f"minimal {job} (boto3 + stdlib)", YARDSTICKS / job, env, prepare, status, python
        )
    notes = [
        "Callback measured: a complete callback: valid state, code exchanged at the Zoho stand-in over HTTP, "
        "tokens stored in Secrets Manager, 'connected' page (200)."
    ]
    measured = []
    layer = empty
    for index, (label, build_dir) in enumerate(builds):
        layer, swapped = lambda_like_layer(
            build_dir / "CoreLayer" / "python", scratch / f"opt{index}" / "python"
        )
        compiled = sum(1 for _ in layer.rglob("*.pyc"))
        variants = {}
        for job, (function_id, prepare, status) in jobs.items():
            env = child_env(functions[function_id], layer=layer)
            variants[job] = Variant(f"{job} ({label})", build_dir / function_id, env, prepare, status, python)
        measured.append((label, variants))
        note = f"{label}: {build_dir}/<Function> and CoreLayer/python ({compiled} .pyc files in the layer)"
        if swapped:
            note += (
                f"; {', '.join(swapped)} extension modules from this environment (the built ones are aarch64)"
            )
        notes.append(note + ".")
    for job, (function_id, prepare, status) in jobs.items():  # pydantic from the last build's layer
        env = {**child_env(functions[function_id], layer=layer), "YARDSTICK_JOB": job}
        yardsticks[f"{job} floor"] = Variant(
            f"minimal {job} + {'pydantic, httpx' if job == 'callback' else 'pydantic'} (floor)",
            YARDSTICKS / "floor",
            env,
            prepare,
            status,
            python,
        )
    text = "\n".join(textwrap.fill(note, width=108, subsequent_indent="  ") for note in notes)
    return yardsticks, measured, text


def measure(variants: list[Variant], runs: int, workdir: Path) -> None:
    for variant in variants:  # warm-up, discarded: disk cache
        run_once(variant, workdir)
    for round_number in range(runs):
        # Interleaved, and rotated so that no variant always runs right after the same neighbour.
        shift = round_number % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            result, _ = run_once(variant, workdir)
            variant.samples.append(result)


def print_importtimes(variants: list[Variant], top: int, workdir: Path) -> None:
    for variant in variants:
        _, stderr = run_once(variant, workdir, importtime=True)
        print(f"\n`python -X importtime`, top {top} cumulative, {variant.name} (µs):")
        rows = [
            [f"{cumulative:,}", f"{own:,}", name] for cumulative, own, name in importtime_top(stderr, top)
        ]
        print_table(["cumulative", "self", "module"], rows)


def print_first_invoke_profiles(variants: list[Variant], top: int, workdir: Path) -> None:
    """Where each function's first invocation spends its time (cProfile, cumulative), after the import."""
    for variant in variants:
        stats_path = workdir / "first-invoke.prof"
        result, _ = run_once(variant, workdir, profile=stats_path)
        print(f"\nFirst invocation of {variant.name}: AWS calls {', '.join(result['aws_calls'])}")
        if variant.function_dir.parent == YARDSTICKS:
            continue  # the hand-written ones: only their calls, to compare
        listing = io.StringIO()
        pstats.Stats(str(stats_path), stream=listing).sort_stats("cumulative").print_stats(top)
        print(f"top {top} by cumulative time (cProfile):")
        table = listing.getvalue()
        print(table[table.find("   ncalls") :].rstrip())


# What each dependency costs when a cold process imports it (and, for two, makes what the functions make).
DEPENDENCIES = {
    "boto3 + 2 clients (the bare handler)": "import boto3; boto3.client('dynamodb'); boto3.client('secretsmanager')",
    "botocore + 2 clients (the broker's)": "import botocore.session as s; x = s.get_session(); "
    "x.create_client('dynamodb'); x.create_client('secretsmanager')",
    "Powertools Logger and Metrics": "from aws_lambda_powertools import Logger, Metrics",
    "Powertools event handler": "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver",
    "Powertools event handler + validation": "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver; "
    "import aws_lambda_powertools.event_handler.middlewares.openapi_validation",
    "pydantic (BaseModel, as every model imports it)": "from pydantic import BaseModel",
    "httpx": "import httpx",
    "httpx + Client() (certifi TLS context)": "import httpx; httpx.Client()",
    "urllib.request (the minimal callback's)": "import urllib.request",
}


def print_dependency_costs(python: str, layer: Path, runs: int, env: dict[str, str]) -> None:
    """Each dependency's import in fresh processes, interleaved, against the bare boto3 handler's."""
    samples: dict[str, list[float]] = {name: [] for name in DEPENDENCIES}
    timer = (
        "import time; started = time.perf_counter(); {code}; print((time.perf_counter() - started) * 1000)"
    )
    for _ in range(runs):
        for name, code in DEPENDENCIES.items():
            finished = subprocess.run(
                [python, "-c", timer.format(code=code)],
                env={**env, "PYTHONPATH": str(layer)},
                capture_output=True,
                text=True,
                check=True,
            )
            samples[name].append(float(finished.stdout))
    bare = statistics.median(samples[next(iter(DEPENDENCIES))])
    print(
        f"\nWhat each dependency costs a cold process (medians of {runs}, as built, on the same interpreter):"
    )
    rows = [
        [name, f"{statistics.median(values):.1f}", f"{statistics.median(values) / bare:.2f}x"]
        for name, values in samples.items()
    ]
    print_table(["dependency", "ms", "vs bare boto3 handler"], rows)


def print_sizes(build_dir: Path) -> None:
    sizes = built_sizes(build_dir)
    print(f"\nBuilt sizes in {build_dir} (Lambda allows 250 MB unzipped per function, layers included):")
    rows = []
    for name, size in sizes.items():
        zipped = zipped_size(build_dir / name)
        rows.append([name, f"{size:,}", f"{size / MB:.2f}", f"{zipped:,}", f"{zipped / MB:.2f}"])
    print_table(["artifact", "bytes", "MB", "zipped bytes", "zipped MB"], rows)
    layer = sizes.get("CoreLayer", 0)
    for name, size in sizes.items():
        if name.endswith("Function"):
            total = size + layer
            print(
                f"  {name} + CoreLayer: {total / MB:.2f} MB unzipped, "
                f"{100 * total / LAMBDA_UNZIPPED_LIMIT:.1f}% of the 250 MB limit"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per variant (default 7)")
    parser.add_argument(
        "--build-dir",
        action="append",
        default=[],
        metavar="[LABEL=]DIR",
        help="a `sam build` output; repeat to compare builds (steps) in one run (default .aws-sam/build)",
    )
    parser.add_argument(
        "--top", type=int, default=10, help="imports listed per function (default 10; 0: none)"
    )
    parser.add_argument(
        "--dependencies", action="store_true", help="also what each dependency costs at import, as built"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also profile each function's first invocation and list its N costliest calls",
    )
    options = parser.parse_args(argv)
    if options.runs < 1:
        parser.error("--runs must be at least 1")
    builds = parse_builds(options.build_dir or [str(ROOT / ".aws-sam" / "build")])
    for path in (LAYER_SOURCE, ROOT / "local"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))

    python, held = runtime_interpreter(Path.home() / ".cache" / "zoho-broker-bench")
    print(f"{platform.machine()}, {os.cpu_count()} cores. Every process runs on {held}.")
    with tempfile.TemporaryDirectory(prefix="cold-start-") as temporary, broker_backend() as backend:
        scratch = Path(temporary)
        yardsticks, measured, notes = build_variants(backend, scratch, builds, python)
        print(
            "Start measured: POST /connect/{link} (Continue) on a fresh link per run, answered by a 302 to Zoho."
        )
        print(notes)
        workdir = scratch / "run"
        workdir.mkdir()
        everything = [*yardsticks.values(), *(v for _, variants in measured for v in variants.values())]
        measure(everything, options.runs, workdir)
        print_medians(everything, options.runs)
        print_ratios(yardsticks, measured)
        if options.dependencies:
            last = measured[-1][1]["start"].env  # the last build's layer, as Lambda runs it
            print_dependency_costs(python, Path(last["PYTHONPATH"]), options.runs, last)
        if options.profile:
            print_first_invoke_profiles(
                [*yardsticks.values(), *(v for _, variants in measured[-1:] for v in variants.values())],
                options.profile,
                workdir,
            )
        if options.top:
            print_importtimes(
                [v for _, variants in measured[-1:] for v in variants.values()], options.top, workdir
            )
    for _, build_dir in builds[-1:]:
        print_sizes(build_dir)


if __name__ == "__main__":
    main()

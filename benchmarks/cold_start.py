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
  `--profile N` lists the AWS calls each one and each function makes, so a difference shows.

    python benchmarks/cold_start.py [--runs 7] [--build-dir [LABEL=]DIR ...] [--profile N]

--build-dir defaults to .aws-sam/build (`make build`); repeat it with labels to compare builds of several
commits (the steps of an optimisation) in one run. It also prints the built sizes of the last build.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import io
import json
import logging
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
LAYER_SOURCE = ROOT / "layers" / "broker"
EVENTS = ROOT / "events"
API_DOMAIN = "abc123.execute-api.eu-west-1.amazonaws.com"
BASE_URL = f"https://{API_DOMAIN}"
REGION = "eu-west-1"
BINDING_COOKIE = "__Host-zoho_broker_binding"  # as deployed (BROKER_COOKIE_SECURE unset)
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function code plus all its layers, unzipped
MB = 1024 * 1024

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
# Sizes of a `sam build` output.


def _files(directory: Path) -> Iterator[Path]:
    for folder, _, names in os.walk(directory):
        for name in sorted(names):
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                yield path


def built_sizes(build_dir: Path) -> dict[str, int]:
    """Unzipped bytes of every artifact in a `sam build` output: one directory per function and layer."""
    return {
        child.name: sum(path.stat().st_size for path in _files(child))
        for child in sorted(Path(build_dir).iterdir())
        if child.is_dir()
    }


def zipped_size(directory: Path) -> int:
    """Bytes of the directory zipped with deflate, as `sam deploy` uploads it; zipped in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in _files(directory):
            archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getbuffer().nbytes


def print_sizes(build_dir: Path) -> None:
    sizes = built_sizes(build_dir)
    print(f"\nBuilt sizes in {build_dir} (Lambda allows 250 MB unzipped per function, layers included):")
    print(f"  {'artifact':<20} {'bytes':>12} {'MB':>8} {'zipped bytes':>14} {'zipped MB':>10}")
    for name, size in sizes.items():
        zipped = zipped_size(build_dir / name)
        print(f"  {name:<20} {size:>12,} {size / MB:>8.2f} {zipped:>14,} {zipped / MB:>10.2f}")
    layer = sizes.get("CoreLayer", 0)
    for name, size in sizes.items():
        if name.endswith("Function"):
            total = size + layer
            print(
                f"  {name} + CoreLayer: {total / MB:.2f} MB unzipped, "
                f"{100 * total / LAMBDA_UNZIPPED_LIMIT:.1f}% of the 250 MB limit"
            )


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
# The broker's state: a moto server, a subscription, fresh connect links and states.


def http_event(
    template_name: str, *, path: str, query: str = "", cookies: list[str] | None = None
) -> dict[str, Any]:
    """An HTTP API v2 event shaped like events/<template_name>, for another path, query and cookies."""
    event: dict[str, Any] = copy.deepcopy(json.loads((EVENTS / template_name).read_text(encoding="utf-8")))
    event["rawPath"] = path
    event["requestContext"]["http"]["path"] = path
    event["rawQueryString"] = query
    event.pop("queryStringParameters", None)
    if query:
        event["queryStringParameters"] = dict(parse_qsl(query, keep_blank_values=True))
    event.pop("cookies", None)
    if cookies:
        event["cookies"] = cookies
    return event


@contextlib.contextmanager
def broker_backend() -> Iterator[dict[str, Any]]:
    """A provisioned moto server, one subscription, and the Zoho stand-in when it exists."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per AWS call otherwise
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    standin: Any = None
    try:
        host, port = moto.get_host_and_port()
        aws = {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "benchmark",
            "AWS_SECRET_ACCESS_KEY": "benchmark",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
        os.environ.update(aws)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            os.environ.pop(name, None)

        from broker_local.functions import function_environment
        from broker_local.template import load_template, provision

        template = load_template(ROOT / "template.yaml")
        stack = provision(template)
        functions = {
            name: {**function_environment(template, stack, name), **aws}
            for name in ("StartFunction", "CallbackFunction", "AdminFunction")
        }

        standin_note = ""
        try:
            from broker_local.zoho_standin import ZohoStandIn
        except ImportError as error:
            standin_note = f"broker_local.zoho_standin is not importable ({error})"
        else:
            standin = ZohoStandIn({"us": 0}).start()
            servers = json.dumps(standin.accounts_servers)
            for env in functions.values():
                env["BROKER_ZOHO_ACCOUNTS_SERVERS"] = servers

        os.environ.update(functions["AdminFunction"])
        from zoho_broker.logic import subscriptions
        from zoho_broker.models import SubscriptionCreate
        from zoho_broker.services import get_services, reset_services

        reset_services()
        services = get_services()
        created = subscriptions.create(
            services,
            SubscriptionCreate.model_validate(
                {
                    "name": "Cold start benchmark",
                    "integration": "zoho-crm",
                    "client_id": "1000.COLDSTARTBENCHMARK",
                    "client_secret": "cold-start-benchmark-client-secret",
                }
            ),
        )
        yield {
            "functions": functions,
            "services": services,
            "subscription_id": created.subscription_id,
            "standin": standin,
            "standin_note": standin_note,
        }
    finally:
        if standin is not None:
            standin.stop()
        moto.stop()


def link_token(backend: dict[str, Any]) -> str:
    from zoho_broker.logic import subscriptions

    link = subscriptions.create_connect_link(
        backend["services"], backend["subscription_id"], base_url=BASE_URL
    )
    return link.url.rsplit("/", 1)[1]


def start_event(backend: dict[str, Any]) -> dict[str, Any]:
    token = link_token(backend)
    # The Continue button's POST: it mints the state and redirects (the GET only shows the page).
    event = http_event("start-connect-continue.json", path=f"/connect/{token}")
    event["pathParameters"] = {"link": token}
    return event


def callback_events(backend: dict[str, Any]) -> tuple[Callable[[], dict[str, Any]], str]:
    """What each callback run gets, and a sentence saying which path of the callback that is."""
    from zoho_broker.logic import connect

    def started() -> tuple[str, str]:
        outcome = connect.start(
            backend["services"], link_token=link_token(backend), browser_binding=None, base_url=BASE_URL
        )
        return outcome.authorization_url, outcome.browser_binding

    def denied() -> dict[str, Any]:
        authorization_url, binding = started()
        state = dict(parse_qsl(urlsplit(authorization_url).query))["state"]
        query = f"state={state}&error=access_denied"
        return http_event(
            "callback.json", path="/oauth/callback", query=query, cookies=[f"{BINDING_COOKIE}={binding}"]
        )

    def exchanged() -> dict[str, Any]:
        authorization_url, binding = started()
        # The stand-in mints the code directly: its consent page allows 4 codes a minute, as Zoho does.
        asked = dict(parse_qsl(urlsplit(authorization_url).query))
        standin = backend["standin"]
        code = standin.issue_code(
            client_id=asked["client_id"],
            redirect_uri=asked["redirect_uri"],
            scope=asked["scope"],
            data_centre="us",
        )
        query = urlencode(
            {
                "state": asked["state"],
                "code": code,
                "location": "us",
                "accounts-server": standin.accounts_servers["us"],
            }
        )
        return http_event(
            "callback.json", path="/oauth/callback", query=query, cookies=[f"{BINDING_COOKIE}={binding}"]
        )

    if backend["standin"] is None:
        reason = backend["standin_note"]
    else:
        try:
            exchanged()  # one rehearsal in this process: does the stand-in's consent page work as expected?
        except Exception as error:
            reason = f"the consent at the Zoho stand-in failed ({type(error).__name__}: {error})"
        else:
            return exchanged, (
                "a complete callback: valid state, code exchanged at the Zoho stand-in over HTTP, "
                "tokens stored in Secrets Manager, 'connected' page (200)"
            )
    return denied, (
        "the consent-denied callback (error=access_denied with a valid state and binding cookie): "
        "verifies and consumes the state and renders the 200 page, but exchanges no code, so httpx "
        f"is never imported. Why not a complete exchange: {reason}"
    )


# --------------------------------------------------------------------------------------------------
# The interpreter: Python 3.13 with boto3 and botocore alone, as the Lambda runtime carries them.

YARDSTICKS = ROOT / "benchmarks" / "yardsticks"
# The Lambda runtime's own packages; anything else in the interpreter would be paid for by nobody in Lambda.
RUNTIME_DISTRIBUTIONS = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}


def boto3_pins() -> list[str]:
    """boto3 as requirements-dev.txt pins it, and the botocore the tests run with (the dev venv's)."""
    from importlib.metadata import version

    pins = [line.strip() for line in (ROOT / "requirements-dev.txt").read_text().splitlines()]
    boto3 = next((pin for pin in pins if pin.startswith("boto3==")), None)
    if boto3 is None:
        raise SystemExit("requirements-dev.txt pins no boto3==…")
    return [boto3, f"botocore=={version('botocore')}"]


def runtime_interpreter(cache: Path) -> tuple[str, str]:
    """A venv of this Python (3.13, as Lambda's python3.13) holding only boto3 and its dependencies.

    Made once and kept under ``cache``; returns its python and what it holds. The dev virtualenv is no
    yardstick: its boto3 finds awscrt, pyOpenSSL and cryptography and imports them.
    """
    pins = boto3_pins()
    version = platform.python_version()
    venv = cache / f"python{version}-{'-'.join(pin.replace('==', '') for pin in pins)}"
    python = venv / "bin" / "python"
    # The interpreter alone: PYTHONPATH (the Makefile sets one) would show pip the repository's packages.
    clean = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins],
            check=True,
            env=clean,
        )
        (venv / ".complete").touch()
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
        env=clean,
    )
    held = {entry["name"].lower(): entry["version"] for entry in json.loads(listed.stdout)}
    extra = set(held) - RUNTIME_DISTRIBUTIONS - {"pip", "setuptools"}
    if extra:
        raise SystemExit(f"{venv} holds more than boto3 and its dependencies: {sorted(extra)}")
    shown = ", ".join(f"{name} {held[name]}" for name in sorted(set(held) & RUNTIME_DISTRIBUTIONS))
    return str(python), f"Python {version} from {venv.name} ({shown})"


# --------------------------------------------------------------------------------------------------
# Layouts: the sam build output as Lambda runs it.


def child_env(function_env: dict[str, str], *, layer: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "BROKER_", "POWERTOOLS_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(function_env)
    env.update(
        {
            # /opt/python in Lambda: after the function's directory, before the runtime's boto3.
            "PYTHONPATH": str(layer),
            "AWS_LAMBDA_FUNCTION_NAME": "cold-start-benchmark",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            # As Lambda, whose code directories are read-only: use the .pyc files shipped, write none.
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def lambda_like_layer(built_layer: Path, destination: Path) -> tuple[Path, list[str]]:
    """A copy of the built layer's python/ directory, runnable here.

    When this machine is not arm64, each aarch64 extension module is replaced by this environment's
    build of the same package (its version must match); the Python files and their .pyc stay as built.
    Returns the layer and what was swapped.
    """
    shutil.copytree(built_layer, destination, symlinks=True)
    if platform.machine().lower() in ("aarch64", "arm64"):
        return destination, []
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    owners = packages_distributions()
    swapped = set()
    for extension in sorted(destination.rglob("*.so")):
        relative = extension.relative_to(destination)
        package = relative.parts[0]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"{package} has native code in the layer but is not installed here to stand in")
        here = Path(spec.submodule_search_locations[0])
        for distribution in owners.get(package, []):
            built = list(destination.glob(f"{distribution.replace('-', '_')}-*.dist-info"))
            try:
                wanted = version(distribution)
            except PackageNotFoundError:
                continue
            if built and not built[0].name.startswith(f"{distribution.replace('-', '_')}-{wanted}."):
                raise SystemExit(f"{package}: the layer has {built[0].name}, this environment {wanted}")
        stem = extension.name.split(".", 1)[0]
        replacements = list((here / Path(*relative.parts[1:])).parent.glob(f"{stem}.*.so"))
        if not replacements:
            raise SystemExit(f"no local build of {relative} to stand in for the aarch64 one")
        extension.unlink()
        shutil.copy2(replacements[0], extension.parent / replacements[0].name)
        swapped.add(package)
    return destination, sorted(swapped)


# --------------------------------------------------------------------------------------------------


def median(variant: Variant, column: str) -> float:
    return statistics.median(sample[column] for sample in variant.samples)


def print_table(variants: list[Variant], runs: int) -> None:
    columns = ("import_ms", "first_invoke_ms", "total_ms", "process_ms")
    print(f"\nMedians of {runs} fresh processes per variant (ms):")
    print(f"  {'variant':<40} {'import':>9} {'1st invoke':>11} {'total':>9} {'process':>9}")
    for variant in variants:
        imports, invoke, total, process = (median(variant, column) for column in columns)
        print(f"  {variant.name:<40} {imports:>9.1f} {invoke:>11.1f} {total:>9.1f} {process:>9.1f}")
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
    header = f"  {'build':<28} {'start vs minimal':>17} {'callback vs minimal':>20}"
    header += f" {'start import vs bare':>21} {'callback import vs bare':>24}"
    print(header)
    for label, functions in builds:
        start, callback = functions["start"], functions["callback"]
        row = f"  {label:<28}"
        row += f" {median(start, 'total_ms') / median(yardsticks['start'], 'total_ms'):>16.2f}x"
        row += f" {median(callback, 'total_ms') / median(yardsticks['callback'], 'total_ms'):>19.2f}x"
        row += f" {median(start, 'import_ms') / median(bare, 'import_ms'):>20.2f}x"
        row += f" {median(callback, 'import_ms') / median(bare, 'import_ms'):>23.2f}x"
        print(row)


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
    callback_prepare, callback_case = callback_events(backend)

    def start_prepare() -> dict[str, Any]:
        return start_event(backend)

    jobs = {
        "start": ("StartFunction", start_prepare, 302),
        "callback": ("CallbackFunction", callback_prepare, 200),
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
    notes = [f"Callback measured: {callback_case}."]
    measured = []
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
        print(f"  {'cumulative':>10} {'self':>8}  module")
        for cumulative, own, name in importtime_top(stderr, top):
            print(f"  {cumulative:>10,} {own:>8,}  {name}")


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
    "pydantic": "import pydantic",
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
    print(f"  {'dependency':<42} {'ms':>8} {'vs bare boto3 handler':>22}")
    for name, values in samples.items():
        print(f"  {name:<42} {statistics.median(values):>8.1f} {statistics.median(values) / bare:>21.2f}x")


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
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "zoho-broker-bench",
        help="where the boto3-only interpreter is kept (default ~/.cache/zoho-broker-bench)",
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

    python, held = runtime_interpreter(options.cache)
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
        print_table(everything, options.runs)
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

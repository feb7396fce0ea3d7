"""Cold start of the start and callback functions, as a ratio to a bare boto3 handler.

Every measurement is a fresh Python process laid out like Lambda: the function's directory first on
sys.path (and as the working directory), then the layer, then boto3 from the environment (the Lambda
runtime carries it). The process imports `app` and invokes `app.handler` once with an HTTP API v2 event
against a moto server provisioned from template.yaml, so the first invoke pays for its boto3 clients,
its Secrets Manager and DynamoDB calls, and any import it defers.

    python benchmarks/cold_start.py [--runs 7] [--build-dir .aws-sam/build]

With --build-dir (the output of `make build`) it also prints the size of each built function and of the
layer, and measures the functions "as built": sam build ships no .pyc files and Lambda cannot write them
(its code directories are read-only), so every cold start compiles the layer's Python from source.
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
BINDING_COOKIE = "zoho_broker_binding"
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
response = app.handler(event, Context())
invoked = time.perf_counter()
with open(result_path, "w", encoding="utf-8") as stream:
    json.dump(
        {
            "import_ms": (imported - started) * 1000,
            "first_invoke_ms": (invoked - imported) * 1000,
            "total_ms": (invoked - started) * 1000,
            "answered_at": time.time(),
            "status": response.get("statusCode"),
            "body_head": str(response.get("body", ""))[:300],
        },
        stream,
    )
"""

BASELINE_APP = '''"""A bare handler: what every Python function pays for boto3 and two clients."""

import boto3

dynamodb = boto3.client("dynamodb")
secretsmanager = boto3.client("secretsmanager")


def handler(event, context):
    return {"statusCode": 200}
'''


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
    samples: list[dict[str, float]] = field(default_factory=list)


def run_once(variant: Variant, workdir: Path, *, importtime: bool = False) -> tuple[dict[str, Any], str]:
    """One cold start of the variant in a fresh process; returns its figures and its stderr."""
    event_path = workdir / "event.json"
    result_path = workdir / "result.json"
    event_path.write_text(json.dumps(variant.prepare()), encoding="utf-8")
    result_path.unlink(missing_ok=True)
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", RUNNER]
    command += [str(variant.function_dir), str(event_path), str(result_path)]
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

        from broker_local.template import function_environment, load_template, provision

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
# Layouts: the source tree with cached bytecode, and the sam build output as Lambda runs it.


def child_env(function_env: dict[str, str], *, layer: Path, pycache: Path | None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "BROKER_", "POWERTOOLS_", "PYTHON"))
    }
    env.update(function_env)
    env.update(
        {
            "PYTHONPATH": str(layer),
            "AWS_LAMBDA_FUNCTION_NAME": "cold-start-benchmark",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        }
    )
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # as Lambda: compile what has no .pyc, every time
    else:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)  # bytecode cached outside the repository
    return env


def lambda_like_layer(built_layer: Path, destination: Path) -> tuple[Path, list[str]]:
    """The built layer's python/ directory, runnable here; packages with native code come from this
    environment when this machine is not arm64 (the built ones are aarch64). Returns what was swapped."""
    if platform.machine().lower() in ("aarch64", "arm64"):
        return built_layer, []
    shutil.copytree(built_layer, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    swapped = sorted({path.relative_to(destination).parts[0] for path in destination.rglob("*.so")})
    for package in swapped:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"{package} has native code in the layer but is not installed here to stand in")
        shutil.rmtree(destination / package)
        shutil.copytree(
            spec.submodule_search_locations[0],
            destination / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    return destination, swapped


# --------------------------------------------------------------------------------------------------


def print_table(variants: list[Variant], runs: int) -> None:
    columns = ("import_ms", "first_invoke_ms", "total_ms", "process_ms")
    print(f"\nMedians of {runs} fresh processes per variant (ms):")
    print(f"  {'variant':<34} {'import':>9} {'1st invoke':>11} {'total':>9} {'process':>9}")
    for variant in variants:
        medians = [statistics.median(sample[column] for sample in variant.samples) for column in columns]
        imports, invoke, total, process = medians
        print(f"  {variant.name:<34} {imports:>9.1f} {invoke:>11.1f} {total:>9.1f} {process:>9.1f}")
    print("  total = import + first invoke, timed inside the process;")
    print("  process = from spawning the process to the handler's answer (interpreter start included)")


def print_ratios(variants: list[Variant]) -> None:
    baseline = variants[0]

    def median(variant: Variant, column: str) -> float:
        return statistics.median(sample[column] for sample in variant.samples)

    print(f"\nRatio to the {baseline.name}:")
    print(f"  {'variant':<34} {'total':>8} {'import':>8}")
    for variant in variants[1:]:
        total = median(variant, "total_ms") / median(baseline, "total_ms")
        imports = median(variant, "import_ms") / median(baseline, "import_ms")
        print(f"  {variant.name:<34} {total:>7.2f}x {imports:>7.2f}x")


def build_variants(
    backend: dict[str, Any], scratch: Path, build_dir: Path | None
) -> tuple[list[Variant], str]:
    """The baseline first, then each function from the source tree and, given a build, as built."""
    functions = backend["functions"]
    callback_prepare, callback_case = callback_events(backend)

    def start_prepare() -> dict[str, Any]:
        return start_event(backend)

    baseline_dir = scratch / "baseline"
    baseline_dir.mkdir()
    (baseline_dir / "app.py").write_text(BASELINE_APP, encoding="utf-8")
    jobs = (
        ("start", "StartFunction", start_prepare, 302),
        ("callback", "CallbackFunction", callback_prepare, 200),
    )
    pycache = scratch / "pycache"
    variants = [
        Variant(
            "baseline (boto3 + 2 clients)",
            baseline_dir,
            child_env(functions["StartFunction"], layer=LAYER_SOURCE, pycache=pycache),
            start_prepare,
            200,
        )
    ]
    for job, function_id, prepare, status in jobs:
        env = child_env(functions[function_id], layer=LAYER_SOURCE, pycache=pycache)
        variants.append(Variant(job, ROOT / "functions" / job, env, prepare, status))
    notes = [f"Callback measured: {callback_case}."]
    if build_dir is not None:
        layer, swapped = lambda_like_layer(build_dir / "CoreLayer" / "python", scratch / "opt" / "python")
        for job, function_id, prepare, status in jobs:
            env = child_env(functions[function_id], layer=layer, pycache=None)
            variants.append(
                Variant(f"{job} (as built, no .pyc)", build_dir / function_id, env, prepare, status)
            )
        note = f"As built: {build_dir}/<Function> and CoreLayer/python, compiled from source on every run"
        if swapped:
            note += f"; {', '.join(swapped)} from this environment (the built one is aarch64)"
        notes.append(note + ".")
    return variants, "\n".join(textwrap.fill(note, width=108, subsequent_indent="  ") for note in notes)


def measure(variants: list[Variant], runs: int, workdir: Path) -> None:
    for variant in variants:  # warm-up, discarded: disk cache, and the cached variants' .pyc
        run_once(variant, workdir)
    for round_number in range(runs):
        # Interleaved, and rotated so that no variant always runs right after the same neighbour.
        shift = round_number % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            result, _ = run_once(variant, workdir)
            variant.samples.append(result)


def print_importtimes(variants: list[Variant], top: int, workdir: Path) -> None:
    for variant in variants[1:]:
        _, stderr = run_once(variant, workdir, importtime=True)
        print(f"\n`python -X importtime`, top {top} cumulative, {variant.name} (µs):")
        print(f"  {'cumulative':>10} {'self':>8}  module")
        for cumulative, own, name in importtime_top(stderr, top):
            print(f"  {cumulative:>10,} {own:>8,}  {name}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per variant (default 7)")
    parser.add_argument(
        "--build-dir", type=Path, help="a `sam build` output (.aws-sam/build): sizes, as-built runs"
    )
    parser.add_argument("--top", type=int, default=10, help="imports listed per function (default 10)")
    options = parser.parse_args(argv)
    if options.runs < 1:
        parser.error("--runs must be at least 1")
    build_dir: Path | None = options.build_dir
    if build_dir is not None:
        build_dir = build_dir.resolve()
        if not (build_dir / "CoreLayer").is_dir():
            parser.error(f"{build_dir} is not a sam build output (no CoreLayer); run `make build` first")
    for path in (LAYER_SOURCE, ROOT / "local"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))

    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="cold-start-") as temporary, broker_backend() as backend:
        scratch = Path(temporary)
        variants, notes = build_variants(backend, scratch, build_dir)
        print(
            "Start measured: POST /connect/{link} (Continue) on a fresh link per run, answered by a 302 to Zoho."
        )
        print(notes)
        workdir = scratch / "run"
        workdir.mkdir()
        measure(variants, options.runs, workdir)
        print_table(variants, options.runs)
        print_ratios(variants)
        print_importtimes(variants, options.top, workdir)
    if build_dir is not None:
        print_sizes(build_dir)


if __name__ == "__main__":
    main()

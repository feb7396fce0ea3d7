"""What benchmarks/cold_start.py measures with: the sizes of a `sam build` output, the broker's state
in a moto server (a subscription, fresh connect links and states), the boto3-only interpreter the
Lambda runtime carries, and the built layer laid out as Lambda runs it."""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
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
    """A provisioned moto server, one subscription, and the Zoho stand-in."""
    from moto.server import ThreadedMotoServer

    from broker_local.zoho_standin import ZohoStandIn

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per AWS call otherwise
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
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
        with ZohoStandIn({"us": 0}) as standin:
            aws["BROKER_ZOHO_ACCOUNTS_SERVERS"] = json.dumps(standin.accounts_servers)
            functions = {
                name: {**function_environment(template, stack, name), **aws}
                for name in ("StartFunction", "CallbackFunction", "AdminFunction")
            }
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
            }
    finally:
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


def callback_event(backend: dict[str, Any]) -> dict[str, Any]:
    """A complete callback: a fresh valid state and binding cookie, and a code the stand-in minted."""
    from zoho_broker.logic import connect

    outcome = connect.start(
        backend["services"], link_token=link_token(backend), browser_binding=None, base_url=BASE_URL
    )
    # The stand-in mints the code directly: its consent page allows 4 codes a minute, as Zoho does.
    asked = dict(parse_qsl(urlsplit(outcome.authorization_url).query))
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
    cookies = [f"{BINDING_COOKIE}={outcome.browser_binding}"]
    return http_event("callback.json", path="/oauth/callback", query=query, cookies=cookies)


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

"""The local runner: the whole broker on one machine, no AWS account and no Docker.

AWS comes from a moto server provisioned from template.yaml, the routes are served by the same
handlers the Lambdas run, and a Zoho stand-in plays the accounts servers unless told otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from moto.server import ThreadedMotoServer

from broker_local.console import Console
from broker_local.gateway import LocalApiGateway
from broker_local.moto_atomic import make_dynamodb_atomic
from broker_local.scheduler import LocalScheduler
from broker_local.template import Stack, function_environment, http_routes, load_template, provision
from broker_local.zoho_standin import ZohoStandIn
from broker_local.zoho_standin_api import ACCOUNTS

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS_SERVERS_VARIABLE = "BROKER_ZOHO_ACCOUNTS_SERVERS"
DEMO_CLIENT_ID = "1000.LOCALDEMOCLIENT"


@dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 3000
    standin_ports: tuple[int, int] = (9001, 9002)
    real_zoho: bool = False
    demo: bool = True
    log_level: str = "WARNING"
    refresh_interval_seconds: float = 60.0


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def functions_environment(template: dict[str, Any], stack: Stack) -> dict[str, str]:
    """All functions' variables; one process serves them all, so they must agree."""
    merged: dict[str, str] = {}
    for route in http_routes(template):
        for name, value in function_environment(template, stack, route.function_id).items():
            if merged.setdefault(name, value) != value:
                raise RuntimeError(
                    f"{name} differs between functions; the local runner shares one environment"
                )
    return merged


@contextlib.contextmanager
def running_broker(options: Options, environ: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """Start moto, the Zoho stand-in (unless configured away) and the gateway; yield what was started."""
    environ = dict(os.environ if environ is None else environ)
    make_dynamodb_atomic()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port("127.0.0.1"), verbose=False)
    moto.start()
    standin: ZohoStandIn | None = None
    try:
        moto_host, moto_port = moto.get_host_and_port()
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": f"http://{moto_host}:{moto_port}",
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1",
            }
        )
        os.environ.pop("AWS_PROFILE", None)
        template = load_template(ROOT / "template.yaml")
        stack = provision(template)
        os.environ.update(functions_environment(template, stack))

        configured = environ.get(ACCOUNTS_SERVERS_VARIABLE, "").strip()
        if configured:
            servers = json.loads(configured)  # the contract: it replaces the stand-in and is the allow-list
        elif options.real_zoho:
            servers = None  # Zoho's own published list
        else:
            standin = ZohoStandIn(
                {"us": options.standin_ports[0], "eu": options.standin_ports[1]}, host=options.host
            ).start()
            servers = standin.accounts_servers
        os.environ[ACCOUNTS_SERVERS_VARIABLE] = json.dumps(servers) if servers else ""
        # A wildcard bind is not an address a browser can open: links name loopback instead.
        public_host = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host  # noqa: S104
        base_url = f"http://{public_host}:{options.port}"
        os.environ["BROKER_PUBLIC_BASE_URL"] = base_url
        # Plain http locally; deployed stacks keep Secure cookies.
        os.environ["BROKER_COOKIE_SECURE"] = "false"
        os.environ["POWERTOOLS_LOG_LEVEL"] = options.log_level

        scheduler = LocalScheduler(template, stack, ROOT, interval_seconds=options.refresh_interval_seconds)
        console = Console(base_url, servers)
        with LocalApiGateway(
            http_routes(template), ROOT, host=options.host, port=options.port, extra_routes=console.routes()
        ) as gateway:
            scheduler.start()
            try:
                yield {
                    "gateway": gateway,
                    "stack": stack,
                    "standin": standin,
                    "accounts_servers": servers,
                    "scheduler": scheduler,
                }
            finally:
                scheduler.stop()
    finally:
        if standin is not None:
            standin.stop()
        moto.stop()


def create_demo_subscriptions(base_url: str) -> list[tuple[str, str]]:
    """One subscription per integration with the stand-in's lenient client, and a connect link each."""
    made: list[tuple[str, str]] = []
    demos = [
        {"name": "Demo Zoho CRM", "integration": "zoho-crm", "custom_fields": {}},
        {
            "name": "Demo Zoho Commerce",
            "integration": "zoho-commerce",
            # The stand-in's first account's organization, so the connection's verification call succeeds.
            "custom_fields": {"OrganizationId": ACCOUNTS[0].organization.id},
        },
    ]
    with httpx.Client(base_url=base_url, timeout=10) as admin:
        for demo in demos:
            body = {**demo, "client_id": DEMO_CLIENT_ID, "client_secret": secrets.token_urlsafe(24)}
            created = admin.post("/admin/subscriptions", json=body)
            created.raise_for_status()
            subscription_id = created.json()["subscription_id"]
            link = admin.post(f"/admin/subscriptions/{subscription_id}/connect-links")
            link.raise_for_status()
            made.append((str(demo["name"]), str(link.json()["url"])))
    return made


def banner(
    base_url: str, servers: Mapping[str, str] | None, standin: bool, demos: list[tuple[str, str]]
) -> str:
    lines = [
        "",
        f"Console: {base_url}/",
        "",
        f"Zoho OAuth broker running on {base_url}",
        "",
        f"  Admin API (no signature locally):  {base_url}/admin/subscriptions",
        f"  OpenAPI document:                  {base_url}/admin/openapi.json",
        f"  Redirect URL (register at Zoho):   {base_url}/oauth/callback",
        f"  Token for a consumer:              {base_url}/admin/subscriptions/<id>/token",
    ]
    if servers:
        kind = "Zoho stand-in" if standin else "Zoho accounts servers"
        lines.append(f"  {kind}: " + ", ".join(f"{dc} {url}" for dc, url in servers.items()))
    else:
        lines.append("  Zoho: the real accounts servers (use your own API Console client)")
    if demos:
        lines += ["", "Open a connect link in a browser and click Accept (each link works once):"]
        lines += [f"  {name}: {url}" for name, url in demos]
        lines += ["", f"Then see the status: curl {base_url}/admin/subscriptions"]
    lines += ["", "Press Ctrl+C to stop.", ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m broker_local", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--standin-ports", default="9001,9002", help="ports of the US and EU stand-ins")
    parser.add_argument("--real-zoho", action="store_true", help="talk to Zoho's real accounts servers")
    parser.add_argument("--no-demo", action="store_true", help="create no demo subscriptions")
    parser.add_argument("--log-level", default="WARNING", help="Powertools log level of the handlers")
    parser.add_argument(
        "--refresh-interval", type=float, default=60.0, help="seconds between runs of the scheduled refresher"
    )
    args = parser.parse_args(argv)
    us, eu = (int(p) for p in args.standin_ports.split(","))
    return Options(
        host=args.host,
        port=args.port,
        standin_ports=(us, eu),
        real_zoho=args.real_zoho,
        demo=not args.no_demo,
        log_level=args.log_level.upper(),
        refresh_interval_seconds=args.refresh_interval,
    )


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # One line per broker request is enough; moto's and httpx's own request lines are noise here.
    for noisy in ("werkzeug", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running_broker(options) as started:
        base_url = started["gateway"].base_url
        standin = started["standin"] is not None
        demos = create_demo_subscriptions(base_url) if options.demo and standin else []
        print(banner(base_url, started["accounts_servers"], standin, demos), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()

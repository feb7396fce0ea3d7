"""The local runner: the whole broker on one machine, no AWS account and no Docker.

AWS comes from a moto server provisioned from template.yaml, the routes are served by the same
handlers the Lambdas run, and a Zoho stand-in plays the accounts servers unless told otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from moto.server import ThreadedMotoServer

from broker_local.console import Console
from broker_local.event_feed import EventFeed
from broker_local.functions import functions_environment, http_routes
from broker_local.gateway import LocalApiGateway
from broker_local.moto_atomic import make_dynamodb_atomic
from broker_local.output import configure_logging, quiet_metrics
from broker_local.scheduler import LocalScheduler
from broker_local.template import load_template, provision
from broker_local.zoho_standin import ZohoStandIn
from broker_local.zoho_standin_api import ACCOUNTS

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS_SERVERS_VARIABLE = "BROKER_ZOHO_ACCOUNTS_SERVERS"
DEMO_CLIENT_IDS = {"zoho-crm": "1000.LOCALDEMOCRM", "zoho-commerce": "1000.LOCALDEMOCOMMERCE"}


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


SHUTDOWN_GRACE_SECONDS = 15.0
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class PortInUse(Exception):
    """A port the runner needs is taken; the message names it and the option that picks another."""


def check_ports(options: Options) -> None:
    """Fail before starting anything when a port is taken, with what to do instead of a traceback."""
    wanted = [(options.port, f"--port {options.port + 1}")]
    if not options.real_zoho:
        us, eu = options.standin_ports
        wanted += [(port, f"--standin-ports {us + 10},{eu + 10}") for port in options.standin_ports]
    for port, instead in wanted:
        if port == 0:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((options.host, port))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                raise PortInUse(
                    f"Port {port} on {options.host} is already in use (another `make dev`?). "
                    f'Pick another: make dev ARGS="{instead}"'
                ) from None


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
                {"us": options.standin_ports[0], "eu": options.standin_ports[1]},
                host=options.host,
                learn_client_secrets=True,  # a wrong secret, after the first one used, is invalid_client
            ).start()
            servers = standin.accounts_servers
        os.environ[ACCOUNTS_SERVERS_VARIABLE] = json.dumps(servers) if servers else ""
        # A wildcard bind is not an address a browser can open: links name loopback instead.
        public_host = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host  # noqa: S104
        base_url = f"http://{public_host}:{options.port}"
        os.environ["BROKER_PUBLIC_BASE_URL"] = base_url
        os.environ["BROKER_CONSOLE_URL"] = f"{base_url}/"
        # Plain http locally; deployed stacks keep Secure cookies.
        os.environ["BROKER_COOKIE_SECURE"] = "false"
        os.environ["POWERTOOLS_LOG_LEVEL"] = options.log_level

        scheduler = LocalScheduler(template, stack, ROOT, interval_seconds=options.refresh_interval_seconds)
        events = EventFeed(stack, os.environ["BROKER_EVENT_BUS_NAME"]).start()
        console = Console(base_url, servers, standin=standin, events=events)
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
                    "events": events,
                }
            finally:
                scheduler.stop()
                events.stop()
    finally:
        if standin is not None:
            standin.stop()
        moto.stop()


def create_demo_subscriptions(base_url: str) -> list[tuple[str, str]]:
    """One subscription per integration, each with a client of its own (so revoking one at Zoho leaves
    the other), and a connect link each."""
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
            client_id = DEMO_CLIENT_IDS[str(demo["integration"])]
            body = {**demo, "client_id": client_id, "client_secret": secrets.token_urlsafe(24)}
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
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="WARNING (default): one line per request and per refresh run; INFO adds the handlers' logs; "
        "DEBUG adds botocore's, metrics and more",
    )
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
    configure_logging(options.log_level)
    try:
        check_ports(options)
    except PortInUse as problem:
        print(problem, file=sys.stderr)
        raise SystemExit(2) from None
    # Ctrl+C and SIGTERM are taken synchronously, never by a handler: `make dev` forwards the SIGTERM its
    # process group already got, and a handler run again inside its own first run deadlocked on the
    # lock that run held. Blocked here, before any thread starts, they stay pending for sigwait (the
    # threads inherit the mask); one pressed during start-up stops the runner right after it.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    with running_broker(options) as started:
        quiet_metrics()
        base_url = started["gateway"].base_url
        standin = started["standin"] is not None
        demos = create_demo_subscriptions(base_url) if options.demo and standin else []
        print(banner(base_url, started["accounts_servers"], standin, demos), flush=True)
        signal.sigwait(STOP_SIGNALS)
        # Stop cleanly, but never outlive the signal by more than a few seconds: a shutdown step that
        # hangs (a thread stuck in a call) must not leave the ports taken.
        watchdog = threading.Timer(SHUTDOWN_GRACE_SECONDS, os._exit, args=(0,))
        watchdog.daemon = True
        watchdog.start()
    print("Stopped.", flush=True)

"""The Zoho stand-in and moto's server in child processes, moto's Secrets Manager indexed, and the
process's own set-up (importable packages, credentials that reach only moto)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from multiprocessing.managers import BaseManager, NamespaceProxy
from typing import Any

from .common import REGION, ROOT


class RemoteStandIn(NamespaceProxy):
    """The ZohoStandIn of a child process: its attributes are read over the manager's connection, and
    these are the methods the benchmarks call."""

    _exposed_ = ("__getattribute__", "issue_code", "register_client", "set_latency")

    def issue_code(self, **kwargs: str) -> str:
        code: str = self._callmethod("issue_code", (), kwargs)
        return code

    def register_client(self, client_id: str, client_secret: str) -> None:
        self._callmethod("register_client", (client_id, client_secret))

    def set_latency(self, seconds: float) -> None:
        self._callmethod("set_latency", (seconds,))


def _standin(data_centres: dict[str, int]) -> Any:
    from broker_local.zoho_standin import ZohoStandIn

    return ZohoStandIn(data_centres, latency_seconds=0).start()


class _StandInProcess(BaseManager):
    pass


_StandInProcess.register("standin", _standin, RemoteStandIn)


@contextlib.contextmanager
def remote_standin(data_centres: dict[str, int]) -> Iterator[RemoteStandIn]:
    """The Zoho stand-in in a child process (multiprocessing's manager serves it).

    Same stand-in, same real HTTP; in its own process its server threads (one per request) do not compete
    with the workers for this process's GIL, and it uses the second core, as Zoho would be elsewhere.
    """
    with _StandInProcess(ctx=multiprocessing.get_context("spawn")) as manager:
        yield manager.standin(data_centres)  # type: ignore[attr-defined]


def index_moto_secrets() -> None:
    """Make moto find a secret by name in O(1) instead of scanning every secret on every call.

    moto's SecretsStore (5.2.5 still) answers __getitem__, __contains__ and get by looping over all secrets
    (names, ARNs and partial ARNs are all accepted): about 3 ms a call at 10,000 secrets, paid by each
    GetSecretValue and PutSecretValue, and quadratic while seeding. A name is also the dict key, so it is
    looked up directly first; anything else (an ARN) still takes moto's own path, so answers are the same.
    """
    from moto.secretsmanager.models import SecretsStore

    if getattr(SecretsStore, "_bench_indexed", False):
        return

    def by_name_first(scan: Any) -> Any:
        def lookup(self: Any, key: str) -> Any:
            found = dict.get(self, key)
            return found if found is not None else scan(self, key)

        return lookup

    scan_contains = SecretsStore.__contains__
    SecretsStore.__getitem__ = by_name_first(SecretsStore.__getitem__)  # type: ignore[method-assign]
    SecretsStore.get = by_name_first(SecretsStore.get)  # type: ignore[method-assign]
    SecretsStore.__contains__ = (  # type: ignore[method-assign]
        lambda self, key: dict.__contains__(self, key) or bool(scan_contains(self, key))
    )
    SecretsStore._bench_indexed = True  # type: ignore[attr-defined]


@contextlib.contextmanager
def aws_backend() -> Iterator[None]:
    """moto for one N: DynamoDB in a moto server in a child process, the rest in this process (mock_aws
    lets the DynamoDB endpoint's requests through)."""
    from moto import mock_aws

    index_moto_secrets()
    context = multiprocessing.get_context("spawn")
    connection, child = context.Pipe()
    process = context.Process(target=_serve_moto, args=(child,), name="moto-server", daemon=True)
    process.start()
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://127.0.0.1:{connection.recv()}"
    try:
        with mock_aws():
            yield
    finally:
        del os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
        process.kill()
        process.join(timeout=10)


def _serve_moto(connection: Any) -> None:
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    from broker_local.moto_atomic import make_dynamodb_atomic

    make_dynamodb_atomic()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # werkzeug logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    connection.send(server.get_host_and_port()[1])
    threading.Event().wait()


def prepare_process() -> None:
    """The broker's, the local runner's and the tests' packages importable, and AWS credentials that reach
    only moto."""
    for path in (ROOT, ROOT / "local", ROOT / "layers" / "broker"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
    )
    warnings.filterwarnings("ignore", message="No application metrics to publish")

"""The built stack under `sam local` on the real arm64 template: the engine (Docker, qemu, the locally
built base image), a copy of the build with longer timeouts, moto's server and the Zoho stand-in on the
host, and env.json pointing the containers at them.

When Docker cannot run here the tests are skipped with the reason; under CI=true they fail instead.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from broker_local.provision import session_for
from broker_local.runner import free_port
from broker_local.template import load_template, provision
from broker_local.zoho_standin import ZohoStandIn
from samlocal.base_image import ensure_base_image
from samlocal.engine import EngineUnavailable, ensure_engine, stop_dockerd
from tests.conftest import ROOT
from tests.sam_build import SamBuild
from tests.samlocal.local_stack import REGION, LocalStack, env_json, local_copy


@pytest.fixture(scope="session")
def engine() -> Iterator[None]:
    """Docker with qemu for arm64 and the base image, made ready here when `make test` has not (by
    `python -m samlocal up`); a dockerd started here is stopped at the end."""
    try:
        started = ensure_engine().started_dockerd
        ensure_base_image()
    except EngineUnavailable as error:
        reason = f"sam local cannot run here: {error}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: it must run)", pytrace=False)
        pytest.skip(reason)
    yield
    if started:
        stop_dockerd()


def docker_bridge_gateway() -> str:
    """The host's address on Docker's bridge: containers and this machine both reach it, as a browser and
    a Lambda both reach Zoho at one URL. Some engines (Debian's 20.10, freshly started) leave the IPAM
    config's Gateway out; the bridge then has its subnet's first address, as Docker assigns it."""
    result = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    [config] = json.loads(result.stdout)
    return str(config.get("Gateway") or next(ipaddress.ip_network(config["Subnet"]).hosts()))


@pytest.fixture(scope="session")
def local_stack(
    engine: None, sam_build: SamBuild, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    template_path = local_copy(sam_build.require(), tmp_path_factory.mktemp("samlocal") / "build")
    moto = ThreadedMotoServer(ip_address="0.0.0.0", port=free_port("127.0.0.1"), verbose=False)
    moto.start()
    try:
        _, port = moto.get_host_and_port()
        endpoint = f"http://127.0.0.1:{port}"
        source = load_template(ROOT / "template.yaml")  # the built copy has the same resources
        stack = provision(source, session=session_for(endpoint, REGION))
        with ZohoStandIn({"us": 0, "eu": 0}, host=docker_bridge_gateway()) as zoho:
            api_port = free_port("127.0.0.1")
            env_file = template_path.parent / "env.json"
            variables = env_json(
                source,
                stack,
                endpoint=endpoint,
                accounts_servers=zoho.accounts_servers,
                public_base_url=f"http://127.0.0.1:{api_port}",
            )
            env_file.write_text(json.dumps(variables, indent=2))
            yield LocalStack(template_path, env_file, stack, endpoint, zoho, api_port)
    finally:
        moto.stop()

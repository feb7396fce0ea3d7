"""`sam local start-api` on the built stack, and one complete connect flow through it and the Zoho
stand-in: the admin creates a subscription and a connect link, the person opens it, presses Continue,
consents at the stand-in and comes back to the callback; the admin then reads the token back, and the
token works at the stand-in. Each step's answer is asserted.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.flow import connect_link, create_subscription, decide_at_zoho, open_link, page_title
from tests.samlocal.local_stack import LocalStack, sam_environment, sam_local
from tests.whoami import whoami
from zoho_broker.page_routes import SECURE_BINDING_COOKIE

pytestmark = pytest.mark.slow

READY_SECONDS = 300
REQUEST_SECONDS = 300  # the first request to each function starts its container under qemu


@dataclass(frozen=True)
class RunningApi:
    url: str
    log: Path


def _wait_until_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sam local start-api exited {process.returncode}:\n{log.read_text()[-4000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    pytest.fail(f"sam local start-api did not listen within {READY_SECONDS} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def api(local_stack: LocalStack) -> Iterator[RunningApi]:
    """start-api with warm containers: each function's container starts once, at its first request."""
    log = local_stack.template.parent / "start-api.log"
    command = sam_local(
        "start-api",
        local_stack.template,
        local_stack.env_file,
        "--host",
        "127.0.0.1",
        "--port",
        str(local_stack.api_port),
        "--warm-containers",
        "LAZY",
    )
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=local_stack.template.parent, env=sam_environment(), stdout=output, stderr=output
        )
    try:
        _wait_until_listening(local_stack.api_port, process, log)
        yield RunningApi(local_stack.api_url, log)
    finally:
        process.send_signal(signal.SIGINT)  # sam removes its warm containers on the way out
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _binding_cookie(response: httpx.Response) -> str:
    """The Secure binding cookie Continue set, as a Cookie header. A browser sends it back to
    http://127.0.0.1 (a secure context); httpx's cookie jar sends Secure cookies over https only, so the
    test carries it."""
    set_cookie = response.headers.get("set-cookie", "")
    pair, *attributes = [part.strip() for part in set_cookie.split(";")]
    name, _, value = pair.partition("=")
    assert (name, bool(value)) == (SECURE_BINDING_COOKIE, True), set_cookie
    assert {"Secure", "HttpOnly"} <= set(attributes), set_cookie
    return f"{name}={value}"


def test_a_person_connects_through_the_built_stack_the_admin_reads_the_token_and_the_refresher_renews_it(
    api: RunningApi, local_stack: LocalStack
) -> None:
    zoho = local_stack.zoho
    with (
        httpx.Client(base_url=api.url, timeout=REQUEST_SECONDS) as admin,
        httpx.Client(follow_redirects=False, timeout=REQUEST_SECONDS) as browser,
    ):
        subscription = create_subscription(admin)
        subscription_id = subscription["subscription_id"]
        assert subscription["status"] == "not_connected"

        link = connect_link(admin, subscription_id)
        assert link.startswith(f"{api.url}/connect/"), link

        started = open_link(browser, link)  # the page, then Continue
        assert started.status_code == 302, started.text
        assert started.headers["location"].startswith(f"{zoho.accounts_servers['us']}/oauth/v2/auth?")
        binding = _binding_cookie(started)

        callback_url = decide_at_zoho(browser, started.headers["location"])
        assert callback_url.startswith(f"{api.url}/oauth/callback?"), callback_url

        page = browser.get(callback_url, headers={"Cookie": binding})
        assert page.status_code == 200, page.text
        assert page_title(page) == "Connected to Zoho CRM (US): Acme Ltd", page.text

        view = admin.get(f"/admin/subscriptions/{subscription_id}")
        assert view.status_code == 200, view.text
        assert (view.json()["status"], view.json()["data_centre"]) == ("connected", "us")

        token = admin.get(f"/admin/subscriptions/{subscription_id}/token")
        assert token.status_code == 200, token.text

    access_token = token.json()["access_token"]
    works = whoami(zoho.accounts_servers["us"], access_token)
    assert works.status_code == 200, works.text
    stored = local_stack.stored_tokens(subscription_id)
    assert stored["access_token"] == access_token
    logged = api.log.read_text(errors="replace")
    for name in ("access_token", "refresh_token"):
        assert stored[name] not in logged, f"the {name} is in sam local's output"

    # The built refresher, on its schedule event, renews the token once it is due.
    local_stack.make_due(subscription_id)

    answer, output = local_stack.invoke("RefresherFunction", "refresher-schedule.json")

    assert answer == {"due": 1, "refreshed_inline": 1, "queued": 0}, output
    renewed = local_stack.stored_tokens(subscription_id)
    assert renewed["access_token"] != access_token
    assert renewed["refresh_token"] == stored["refresh_token"]
    renewed_works = whoami(zoho.accounts_servers["us"], renewed["access_token"])
    assert renewed_works.status_code == 200, renewed_works.text
    for name in ("access_token", "refresh_token"):
        assert renewed[name] not in output, f"the refresher's output shows the {name}"

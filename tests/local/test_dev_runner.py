"""`make dev` as a person runs it: the banner's two demo subscriptions whose links connect through the
stand-in, `ARGS=--real-zoho` sending people to Zoho's own accounts server, and the schedule that
refreshes due subscriptions locally as EventBridge would."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from broker_local.runner import free_port, parse_args
from tests.conftest import ROOT, local_runner
from tests.integration.flow import connect, create_subscription, decide_at_zoho, open_link, page_title
from tests.integration.stored import expire_token
from zoho_broker.services import get_services

BANNER_END = "Press Ctrl+C to stop."


class Dev:
    """`make dev ARGS=…` running in its own process group; its banner lines."""

    def __init__(self, *args: str) -> None:
        self.port = free_port("127.0.0.1")
        self.standin_ports = (free_port("127.0.0.1"), free_port("127.0.0.1"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BROKER_", "AWS_"))}
        arguments = " ".join(
            ["--port", str(self.port), "--standin-ports", "{},{}".format(*self.standin_ports), *args]
        )
        self.process = subprocess.Popen(
            ["make", "-s", "dev", f"ARGS={arguments}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.banner = self._banner(timeout=90)
        self.base_url = f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))

    def _banner(self, timeout: float) -> list[str]:
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while BANNER_END not in lines:
            try:
                lines.append(self._lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail(f"make dev printed no banner within {timeout} s: {lines}")
        return lines

    def runner_pid(self) -> int:
        """The broker's Python process, which `make` started and forwards signals to."""
        children = subprocess.run(
            ["pgrep", "--parent", str(self.process.pid)], capture_output=True, text=True, check=True
        ).stdout.split()
        assert len(children) == 1, children
        return int(children[0])

    def stop(self, how: signal.Signals = signal.SIGTERM, *, repeats: int = 0) -> list[str]:
        """Signal the process group as a terminal or supervisor would; the lines printed after the banner."""
        runner = self.runner_pid()
        os.killpg(self.process.pid, how)
        for _ in range(repeats):  # spread out: signals sent at once merge into one
            time.sleep(0.001)
            with contextlib.suppress(ProcessLookupError):
                os.kill(runner, how)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # leave no runner holding its ports
            self.process.wait(timeout=10)
            pytest.fail("make dev did not stop within 30 s of SIGTERM")
        self._reader.join(timeout=30)  # it ends at the end of make's output
        lines = []
        with contextlib.suppress(queue.Empty):
            while True:
                lines.append(self._lines.get_nowait())
        return lines


@pytest.fixture
def dev(request: pytest.FixtureRequest) -> Iterator[Dev]:
    running = Dev(*getattr(request, "param", ()))
    try:
        yield running
    finally:
        if running.process.poll() is None:
            assert running.stop()[-1:] == ["Stopped."], "make dev did not stop cleanly"


def test_make_dev_prints_two_demo_links_that_connect(dev: Dev) -> None:
    # Given the banner of a plain `make dev`
    links = dict(re.findall(r"^  (Demo Zoho [A-Za-z]+): (http://\S+)$", "\n".join(dev.banner), re.MULTILINE))
    assert sorted(links) == ["Demo Zoho CRM", "Demo Zoho Commerce"]

    # When a person opens each link and accepts at the stand-in (EU for one, US for the other)
    titles = []
    for (name, link), data_centre in zip(sorted(links.items()), ("us", "eu"), strict=True):
        with httpx.Client(timeout=10) as browser:
            started = open_link(browser, link)
            assert started.status_code == 302, (name, started.text)
            assert started.headers["location"].startswith(f"http://127.0.0.1:{dev.standin_ports[0]}/")
            titles.append(
                page_title(
                    browser.get(decide_at_zoho(browser, started.headers["location"], data_centre=data_centre))
                )
            )

    # Then both are connected, as the admin API shows
    assert titles == ["Connected to Zoho CRM (US): Acme Ltd", "Connected to Zoho Commerce (EU): Acme Ltd"]
    listed = httpx.get(f"{dev.base_url}/admin/subscriptions", timeout=10).json()["subscriptions"]
    assert sorted((s["name"], s["status"], s["data_centre"]) for s in listed) == [
        ("Demo Zoho CRM", "connected", "us"),
        ("Demo Zoho Commerce", "connected", "eu"),
    ]


@pytest.mark.parametrize("dev", [("--real-zoho",)], indirect=True)
def test_real_zoho_sends_people_to_zohos_own_accounts_server(dev: Dev) -> None:
    # Given `make dev ARGS=--real-zoho`: no stand-in, so no demo links either
    assert "  Zoho: the real accounts servers (use your own API Console client)" in dev.banner
    assert not any("Demo Zoho" in line for line in dev.banner)
    for port in dev.standin_ports:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)

    # When a person opens a connect link of a subscription made with their own client
    with httpx.Client(base_url=dev.base_url, timeout=10) as admin:
        sid = create_subscription(admin, client_id="1000.MYOWNCLIENT")["subscription_id"]
        link = admin.post(f"/admin/subscriptions/{sid}/connect-links").json()["url"]
        started = open_link(admin, link)

    # Then Continue leads to Zoho's real accounts server, back to the local callback
    assert started.status_code == 302
    location = urlsplit(started.headers["location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https",
        "accounts.zoho.com",
        "/oauth/v2/auth",
    )
    query = parse_qs(location.query)
    assert query["client_id"] == ["1000.MYOWNCLIENT"]
    assert query["redirect_uri"] == [f"{dev.base_url}/oauth/callback"]


@pytest.mark.parametrize("dev", [("--no-demo",)], indirect=True)
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl+C"])
def test_make_dev_stops_cleanly_when_signals_pile_up(dev: Dev, how: signal.Signals) -> None:
    # Given a running `make dev`, when its process group gets the signal and the runner a run of more
    # (make forwards one of its own; a supervisor or an impatient person repeats it)
    after_banner = dev.stop(how, repeats=500)

    # Then it shuts down its servers and says so, rather than hanging or being cut short by the watchdog
    assert after_banner[-1:] == ["Stopped."]
    assert dev.process.returncode != 0  # make reports the signal it got
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{dev.base_url}/", timeout=2)


def test_the_local_schedule_runs_every_minute_unless_told_otherwise() -> None:
    assert parse_args([]).refresh_interval_seconds == 60.0
    assert parse_args(["--refresh-interval", "5"]).refresh_interval_seconds == 5.0


def test_the_local_schedule_refreshes_a_due_subscription_without_anyone_asking() -> None:
    with (
        local_runner(refresh_interval_seconds=0.5) as started,
        httpx.Client(base_url=started["gateway"].base_url, timeout=10) as browser,
    ):
        # Given a connected subscription whose token expires in two minutes
        sid = create_subscription(browser)["subscription_id"]
        assert connect(browser, browser, sid, data_centre="eu").status_code == 200
        services = get_services()
        secret = services.secrets.get(sid)
        assert secret is not None
        expire_token(services, sid, seconds_left=120)

        # When the local scheduler's next runs come (nobody calls the admin API)
        deadline = time.monotonic() + 20
        refreshed = services.secrets.get(sid)
        while refreshed is not None and refreshed.access_token == secret.access_token:
            assert time.monotonic() < deadline, "the local schedule never refreshed the due subscription"
            time.sleep(0.25)
            refreshed = services.secrets.get(sid)

        # Then the refresher refreshed it: a new token, good for the next hour, kept by the broker
        assert refreshed is not None and refreshed.access_token_expires_at is not None
        assert refreshed.access_token_expires_at > datetime.now(UTC) + timedelta(minutes=55)
        assert refreshed.refresh_token == secret.refresh_token
        view = browser.get(f"/admin/subscriptions/{sid}").json()
        assert view["access_token_expires_at"] == refreshed.access_token_expires_at.isoformat().replace(
            "+00:00", "Z"
        )

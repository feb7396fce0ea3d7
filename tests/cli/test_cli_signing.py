"""What the CLI really sends when it signs: every request is captured at a real HTTP server in front of
the local runner, and its SigV4 signature is recomputed independently with botocore for the method,
path, query, headers and body that arrived. `--profile` picks the credentials; `--client-secret-for-dc`
reaches Zoho's token endpoint as that data centre's secret."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from running import CLIENT_SECRET, Broker, Cli, create_subscription

from broker_cli.signing import NO_CREDENTIALS, should_sign
from tests.aws_env import clear_aws_settings, use_credentials
from tests.integration.flow import decide_at_zoho, open_link
from zoho_broker.services import get_services

REGION = "eu-west-1"
ENV_KEYS = Credentials("AKIDENVIRONMENT", "environment-secret-key", "environment-session-token")
PROFILE_KEYS = Credentials("AKIDOPSPROFILE", "ops-profile-secret-key")


@dataclass(frozen=True)
class Received:
    method: str
    target: str  # path and query exactly as sent
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        [value] = [v for k, v in self.headers if k.lower() == name.lower()]
        return value


class Recorder:
    """A real HTTP server that records each request and forwards it to the broker unchanged."""

    def __init__(self, upstream: str) -> None:
        self.received: list[Received] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.received.append(Received(self.command, self.path, list(self.headers.items()), body))
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                answer = httpx.request(self.command, upstream + self.path, headers=headers, content=body)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "date",
                        "server",
                    ):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def do_PATCH(self) -> None:
                self._forward()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def recorder(broker: Broker) -> Iterator[Recorder]:
    running = Recorder(broker.url)
    yield running
    running.close()


@pytest.fixture
def signing_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials in the environment, and a profile `ops` with others in a credentials file."""
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[ops]\naws_access_key_id = {PROFILE_KEYS.access_key}\n"
        f"aws_secret_access_key = {PROFILE_KEYS.secret_key}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    # The module's local runner reaches its moto server through AWS_ENDPOINT_URL: that one stays.
    use_credentials(
        monkeypatch,
        ENV_KEYS.access_key,
        ENV_KEYS.secret_key,
        session_token=str(ENV_KEYS.token),
        keep_endpoint=True,
    )


def verify_sigv4(received: Received, host_url: str, credentials: Credentials) -> None:
    """Recompute the request's signature as execute-api would, from what arrived; assert it matches."""
    authorization = received.header("Authorization")
    algorithm, _, fields = authorization.partition(" ")
    parts = dict(part.strip().split("=", 1) for part in fields.split(","))
    signed_headers = parts["SignedHeaders"].split(";")
    amz_date = received.header("X-Amz-Date")
    assert algorithm == "AWS4-HMAC-SHA256"
    assert parts["Credential"] == f"{credentials.access_key}/{amz_date[:8]}/{REGION}/execute-api/aws4_request"
    assert {"host", "x-amz-date"} <= set(signed_headers)
    if received.body:
        assert "content-type" in signed_headers  # the body's type cannot be swapped under the signature
    if credentials.token:
        assert "x-amz-security-token" in signed_headers
        assert received.header("X-Amz-Security-Token") == credentials.token
    headers = {name: received.header(name) for name in signed_headers}
    request = AWSRequest(
        method=received.method, url=host_url + received.target, headers=headers, data=received.body
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(credentials, "execute-api", REGION)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    assert hmac.compare_digest(parts["Signature"], expected), "the signature does not match what was sent"


def test_signed_requests_carry_a_valid_signature_for_what_was_sent(
    cli: Cli, recorder: Recorder, signing_env: None
) -> None:
    # Given credentials in the environment (a session token among them)
    # When the CLI creates, lists (with a query string) and updates through a server that records it all
    created = cli(
        "--sign", "--region", REGION, "--json", "subscriptions", "create", "--name", "Signed Co",
        "--integration", "zoho-crm", "--client-id", "1000.SIGNED", "--client-secret-stdin",
        url=recorder.url, stdin=CLIENT_SECRET,
    )  # fmt: skip
    sid = created.json()["subscription_id"]
    listed = cli("--sign", "--region", REGION, "subscriptions", "list", url=recorder.url)
    updated = cli(
        "--sign", "--region", REGION, "subscriptions", "update", sid, "--requests-per-minute", "50",
        "--max-concurrent-requests", "5", url=recorder.url,
    )  # fmt: skip

    # Then each worked, and each request that arrived verifies with those credentials
    assert (created.code, listed.code, updated.code) == (0, 0, 0), (created.err, listed.err, updated.err)
    assert [(r.method, r.target.split("?")[0]) for r in recorder.received] == [
        ("POST", "/admin/subscriptions"),
        ("GET", "/admin/subscriptions"),
        ("PATCH", f"/admin/subscriptions/{sid}"),
    ]
    assert "?" in recorder.received[1].target  # the list's limit travels in the query, signed too
    for received in recorder.received:
        verify_sigv4(received, recorder.url, ENV_KEYS)


def test_a_changed_body_no_longer_verifies(cli: Cli, recorder: Recorder, signing_env: None) -> None:
    # Given a signed create as the CLI sent it
    ran = cli(
        "--sign", "--region", REGION, "subscriptions", "create", "--name", "Tamper Co",
        "--integration", "zoho-crm", "--client-id", "1000.TAMPER", "--client-secret-stdin",
        url=recorder.url, stdin=CLIENT_SECRET,
    )  # fmt: skip
    assert ran.code == 0, ran.err
    [sent] = recorder.received
    verify_sigv4(sent, recorder.url, ENV_KEYS)

    # When one byte of its body changes, Then the signature no longer holds: the body is signed
    tampered = Received(sent.method, sent.target, sent.headers, sent.body.replace(b"TAMPER", b"TAMPEX"))
    with pytest.raises(AssertionError, match="signature does not match"):
        verify_sigv4(tampered, recorder.url, ENV_KEYS)


def test_profile_picks_the_credentials_that_sign(cli: Cli, recorder: Recorder, signing_env: None) -> None:
    # Given credentials in the environment and others in profile `ops`
    # When the CLI is told --profile ops
    ran = cli("--sign", "--profile", "ops", "--region", REGION, "integrations", url=recorder.url)

    # Then the profile's keys signed the request (no session token: the profile has none)
    assert ran.code == 0, ran.err
    [sent] = recorder.received
    verify_sigv4(sent, recorder.url, PROFILE_KEYS)
    assert "x-amz-security-token" not in {name.lower() for name, _ in sent.headers}


def test_an_unknown_profile_is_refused_before_anything_is_sent(
    cli: Cli, recorder: Recorder, signing_env: None
) -> None:
    ran = cli("--sign", "--profile", "nobody", "--region", REGION, "integrations", url=recorder.url)

    assert ran.code == 1
    assert ran.err == (
        "broker: error: signing needs AWS credentials: The config profile (nobody) could not be found\n"
    )
    assert recorder.received == []


def test_client_secret_for_dc_is_the_secret_zoho_gets_at_that_data_centre(cli: Cli, broker: Broker) -> None:
    # Given a subscription made with a secret of its own for the EU data centre
    created = create_subscription(cli, "--client-secret-for-dc", "eu=eu-only-secret-0123456789")
    sid = created["subscription_id"]
    before = len(broker.zoho.requests)

    # When a person consents in the EU, and after an update that gives the US its own secret, in the EU
    # and in the US
    def consent(data_centre: str) -> None:
        link = cli("connect-link", sid).out.strip()
        with httpx.Client(timeout=10) as browser:
            started = open_link(browser, link)
            callback = decide_at_zoho(browser, started.headers["location"], data_centre=data_centre)
            assert browser.get(callback).status_code == 200

    consent("eu")
    replaced = cli("subscriptions", "update", sid, "--client-secret-for-dc", "us=us-only-secret-0123456789")
    broker.zoho.forget_client_secrets(created["client_id"])  # the operator changed them at Zoho too
    consent("eu")
    consent("us")

    # Then each code exchange carried the secret of its data centre: the EU one until the update
    # replaced the set with the US one, then the main secret in the EU
    exchanges = [
        r
        for r in broker.zoho.requests[before:]
        if r.path == "/oauth/v2/token" and r.params["grant_type"] == "authorization_code"
    ]
    assert [(r.data_centre, r.params["client_secret"]) for r in exchanges] == [
        ("eu", "eu-only-secret-0123456789"),
        ("eu", CLIENT_SECRET),
        ("us", "us-only-secret-0123456789"),
    ]
    assert replaced.code == 0, replaced.err
    secret = get_services().secrets.get(sid)
    assert secret is not None
    assert secret.client_secrets_by_data_centre == {"us": "us-only-secret-0123456789"}


def test_signing_without_aws_credentials_says_so(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clear_aws_settings(
        monkeypatch,
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        keep_endpoint=True,
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    ran = cli("--sign", "integrations")

    assert (ran.code, ran.err) == (1, f"broker: error: {NO_CREDENTIALS}\n")


@pytest.mark.parametrize(
    ("url", "requested", "expected"),
    [
        ("https://abc.execute-api.eu-west-1.amazonaws.com", None, True),
        ("https://127.0.0.1:3000", None, False),
        ("https://localhost", None, False),
        ("http://broker.example.com", None, False),
        ("http://127.0.0.1:3000", True, True),
        ("https://abc.execute-api.eu-west-1.amazonaws.com", False, False),
    ],
)
def test_only_remote_https_is_signed_by_default(url: str, requested: bool | None, expected: bool) -> None:
    assert should_sign(url, requested) is expected

"""The Zoho client over https: it trusts only certificates it can verify (its TLS context is made on the
first https request, not with the client)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from zoho_broker.errors import ZohoError
from zoho_broker.zoho_client import ZohoClient


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.zoho.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class TokenEndpoint(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps(
            {"access_token": "1000.access", "refresh_token": "1000.refresh", "expires_in": 3600}
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def https_accounts_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    cert_path, key_path = self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenEndpoint)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert_path
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def no_ssl_cert_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in Lambda: neither SSL_CERT_FILE nor SSL_CERT_DIR names extra certificates to trust."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def exchange(client: ZohoClient, origin: str) -> str:
    tokens = client.exchange_code(
        token_url=origin + "/oauth/v2/token",
        client_id="1000.X",
        client_secret="s",
        code="c",
        redirect_uri="r",
    )
    return tokens.access_token


@pytest.mark.usefixtures("no_ssl_cert_env")
def test_an_unverifiable_certificate_means_nothing_is_sent(https_accounts_server: tuple[str, Path]) -> None:
    # Given an accounts server whose certificate cannot be verified, then nothing is sent.
    origin, _ = https_accounts_server

    with pytest.raises(ZohoError) as refused:
        exchange(ZohoClient(timeout_seconds=5), origin)

    assert refused.value.zoho_code == "unreachable"


def test_a_trusted_certificate_lets_the_code_be_exchanged(
    https_accounts_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    origin, cert_path = https_accounts_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))  # as httpx's own client: SSL_CERT_FILE is trusted

    assert exchange(ZohoClient(timeout_seconds=5), origin) == "1000.access"


@pytest.mark.usefixtures("no_ssl_cert_env")
def test_without_ssl_cert_file_the_certificates_shipped_with_the_broker_are_trusted(
    https_accounts_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CA bundle that ships in the layer (certifi) decides, not whatever the host's own store holds:
    # here that bundle is the accounts server's certificate.
    origin, cert_path = https_accounts_server
    monkeypatch.setattr(certifi, "where", lambda: str(cert_path))

    assert exchange(ZohoClient(timeout_seconds=5), origin) == "1000.access"

"""The AWS environment a test runs in: none of the machine's own settings (a profile, an endpoint, a
session token, keys) may reach a client the test makes, so nothing can touch a real account."""

from __future__ import annotations

import pytest

MACHINE_SETTINGS = (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


def clear_aws_settings(monkeypatch: pytest.MonkeyPatch, *more: str, keep_endpoint: bool = False) -> None:
    """Unset the machine's AWS settings (and the ``more`` named) for this test; ``keep_endpoint`` leaves
    AWS_ENDPOINT_URL to a local runner that points it at its own moto server."""
    for name in (*MACHINE_SETTINGS, *more):
        if not (keep_endpoint and name == "AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name, raising=False)


def use_credentials(
    monkeypatch: pytest.MonkeyPatch,
    access_key: str = "testing",
    secret_key: str = "testing",
    *,
    session_token: str | None = None,
    region: str | None = None,
    keep_endpoint: bool = False,
) -> None:
    """These credentials (and region) and nothing else of the machine's AWS settings."""
    clear_aws_settings(monkeypatch, keep_endpoint=keep_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    if session_token is not None:
        monkeypatch.setenv("AWS_SESSION_TOKEN", session_token)
    if region is not None:
        monkeypatch.setenv("AWS_DEFAULT_REGION", region)

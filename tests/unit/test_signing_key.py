"""The state-signing key: read once, kept five minutes, refused when too short to sign with."""

from typing import Any

import pytest

from zoho_broker.store.signing_key import SIGNING_KEY_MAX_AGE_SECONDS, SigningKeyStore

KEY = "k" * 64


class FakeSecretsManager:
    def __init__(self, value: str) -> None:
        self.value = value
        self.reads = 0

    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        self.reads += 1
        return {"SecretString": self.value}


def test_given_the_key_was_read_when_asked_again_within_five_minutes_then_secrets_manager_is_not_called() -> (
    None
):
    client, now = FakeSecretsManager(KEY), [1000.0]
    store = SigningKeyStore("key-id", client, clock=lambda: now[0])  # type: ignore[arg-type]

    first = store.get()
    now[0] += SIGNING_KEY_MAX_AGE_SECONDS - 1
    second = store.get()

    assert (first, second, client.reads) == (KEY.encode(), KEY.encode(), 1)


def test_given_the_key_was_rotated_when_five_minutes_passed_then_the_new_key_is_used() -> None:
    client, now = FakeSecretsManager(KEY), [1000.0]
    store = SigningKeyStore("key-id", client, clock=lambda: now[0])  # type: ignore[arg-type]
    store.get()

    client.value = "n" * 64
    now[0] += SIGNING_KEY_MAX_AGE_SECONDS

    assert store.get() == b"n" * 64


def test_given_a_key_shorter_than_32_characters_then_it_is_refused() -> None:
    store = SigningKeyStore("key-id", FakeSecretsManager("short"))  # type: ignore[arg-type]

    with pytest.raises(RuntimeError, match="shorter than 32"):
        store.get()

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


def test_the_key_is_cached_for_five_minutes() -> None:
    # Given the key was read, when asked again within five minutes, then Secrets Manager is not called.
    client, now = FakeSecretsManager(KEY), [1000.0]
    store = SigningKeyStore("key-id", client, clock=lambda: now[0])  # type: ignore[arg-type]

    first = store.get()
    now[0] += SIGNING_KEY_MAX_AGE_SECONDS - 1
    second = store.get()

    assert (first, second, client.reads) == (KEY.encode(), KEY.encode(), 1)


def test_a_rotated_key_is_used_after_five_minutes() -> None:
    client, now = FakeSecretsManager(KEY), [1000.0]
    store = SigningKeyStore("key-id", client, clock=lambda: now[0])  # type: ignore[arg-type]
    store.get()

    client.value = "n" * 64
    now[0] += SIGNING_KEY_MAX_AGE_SECONDS

    assert store.get() == b"n" * 64


def test_a_key_shorter_than_32_characters_is_refused() -> None:
    store = SigningKeyStore("key-id", FakeSecretsManager("short"))  # type: ignore[arg-type]

    with pytest.raises(RuntimeError) as refused:
        store.get()
    # What the operator finds in the function's log, naming the secret to fix
    assert str(refused.value) == "The state-signing key is missing or shorter than 32 characters."

"""The state value: signed, bound to one subscription, refused when touched."""

import pytest

from zoho_broker import state
from zoho_broker.errors import StateRejected

KEY = b"k" * 64


def test_a_state_verifies_to_its_subscription() -> None:
    minted = state.mint(KEY, "sub_0123456789abcdef")

    verified = state.verify(KEY, minted.value)

    assert verified.subscription_id == "sub_0123456789abcdef"
    assert verified.nonce == minted.nonce


def test_nonces_differ_and_carry_128_bits() -> None:
    first, second = state.mint(KEY, "sub_a"), state.mint(KEY, "sub_a")

    assert first.nonce != second.nonce
    assert len(first.nonce) * 6 >= 128  # base64url characters carry 6 bits each


@pytest.mark.parametrize("part", [0, 1, 2])
def test_a_state_with_any_part_changed_is_rejected(part: int) -> None:
    pieces = state.mint(KEY, "sub_a").value.split(".")
    pieces[part] = pieces[part][:-1] + ("A" if pieces[part][-1] != "A" else "B")

    with pytest.raises(StateRejected):
        state.verify(KEY, ".".join(pieces))


def test_a_state_moved_to_another_subscription_is_rejected() -> None:
    nonce, _, signature = state.mint(KEY, "sub_a").value.split(".")

    with pytest.raises(StateRejected, match="not made by this broker"):
        state.verify(KEY, f"{nonce}.sub_b.{signature}")


def test_a_state_signed_with_another_key_is_rejected() -> None:
    with pytest.raises(StateRejected):
        state.verify(KEY, state.mint(b"x" * 64, "sub_a").value)


@pytest.mark.parametrize("value", ["", "abc", "a.b.c", "x" * 300, "../../etc/passwd"])
def test_a_malformed_state_is_rejected_as_malformed(value: str) -> None:
    with pytest.raises(StateRejected, match="incomplete or damaged"):
        state.verify(KEY, value)


def test_browser_bindings_are_recognised_only_in_their_own_shape() -> None:
    assert state.is_browser_binding(state.new_browser_binding())
    assert not state.is_browser_binding(None)
    assert not state.is_browser_binding("short")
    assert not state.is_browser_binding("a" * 42 + ";")

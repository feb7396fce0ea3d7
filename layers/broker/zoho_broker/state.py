"""The OAuth state value: random, HMAC-signed, bound to one subscription.

Format: ``<nonce>.<subscription id>.<signature>``. The signature is checked before anything is
read from DynamoDB, so a forged or tampered state costs no I/O and consumes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import TypeGuard

from zoho_broker.errors import StateRejected

NONCE_BYTES = 32  # 256 bits; RFC 9700 asks for at least 128
_STATE_PATTERN = re.compile(r"^([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{43})$")
_BINDING_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class SignedState:
    nonce: str
    subscription_id: str
    value: str


def _signature(key: bytes, nonce: str, subscription_id: str) -> str:
    digest = hmac.new(key, f"state|{nonce}|{subscription_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint(key: bytes, subscription_id: str) -> SignedState:
    nonce = secrets.token_urlsafe(NONCE_BYTES)
    value = f"{nonce}.{subscription_id}.{_signature(key, nonce, subscription_id)}"
    return SignedState(nonce=nonce, subscription_id=subscription_id, value=value)


def verify(key: bytes, value: str) -> SignedState:
    match = _STATE_PATTERN.match(value)
    if match is None:
        raise StateRejected("This sign-in link is incomplete or damaged.")
    nonce, subscription_id, signature = match.groups()
    if not hmac.compare_digest(signature, _signature(key, nonce, subscription_id)):
        raise StateRejected("This sign-in link was not made by this broker, or was changed on the way.")
    return SignedState(nonce=nonce, subscription_id=subscription_id, value=value)


def new_browser_binding() -> str:
    return secrets.token_urlsafe(NONCE_BYTES)


def is_browser_binding(value: str | None) -> TypeGuard[str]:
    return value is not None and _BINDING_PATTERN.match(value) is not None


def hash_secret_token(value: str) -> str:
    """Stored form of bearer-like values (binding cookies, connect links): useless to a table reader."""
    return hashlib.sha256(value.encode()).hexdigest()

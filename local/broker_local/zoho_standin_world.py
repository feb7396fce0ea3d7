"""The Zoho stand-in's world as records: grant codes, refresh and access tokens, injected faults, and the
shape of Zoho's tokens and API domains."""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field
from types import MappingProxyType

FAULTS = frozenset(
    {
        "server_error",
        "unavailable",
        "timeout",
        "invalid_code",
        "invalid_client",
        "rate_limited",
        "no_api_domain",
    }
)
"""What inject_fault accepts: the ways Zoho's token endpoint has been seen to fail."""

ACCESS_TOKEN_SECONDS = 3600
MAX_ACCESS_TOKENS_PER_REFRESH_TOKEN = 30
CODES_PER_MINUTE = 4
CODE_BLOCK_SECONDS = 600  # Zoho blocks the user for 10 minutes after too many grant codes.
TIMEOUT_FAULT_SECONDS = 30.0
SELF_CLIENT_REDIRECT_URI = ""  # a Self Client's grant code is bound to no redirect URI
RATE_LIMITED_DESCRIPTION = "You have made too many requests continuously. Please try again after some time."

_API_DOMAINS = MappingProxyType(
    {
        "us": "https://www.zohoapis.com",
        "eu": "https://www.zohoapis.eu",
        "in": "https://www.zohoapis.in",
        "au": "https://www.zohoapis.com.au",
        "jp": "https://www.zohoapis.jp",
        "ca": "https://www.zohoapis.ca",
        "sa": "https://www.zohoapis.sa",
        "uk": "https://www.zohoapis.uk",
    }
)


def api_domain_for(data_centre: str) -> str:
    """The API base Zoho reports for a data centre, so tokens point consumers at the right region."""
    return _API_DOMAINS.get(data_centre, f"https://www.zohoapis.{data_centre}")


def new_token() -> str:
    """A token shaped like Zoho's ("1000.<32 hex>.<32 hex>"), so format checks see the real shape."""
    return f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"


@dataclass
class Code:
    client_id: str
    redirect_uri: str
    scope: str
    access_type: str
    data_centre: str
    expires_at: float
    organization_id: str = ""  # the organization of the account that consented


@dataclass
class RefreshToken:
    client_id: str
    scope: str
    data_centre: str
    access_tokens: deque[str] = field(default_factory=deque)
    organization_id: str = ""


@dataclass
class AccessToken:
    client_id: str
    scope: str
    data_centre: str
    refresh_token: str | None
    expires_at: float
    organization_id: str = ""


@dataclass
class Fault:
    kind: str
    remaining: int
    data_centre: str | None

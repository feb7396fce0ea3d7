"""Whether an access token works, and where: the Zoho stand-in's /standin/whoami, called the way Zoho's
APIs are (``Authorization: Zoho-oauthtoken …``)."""

from __future__ import annotations

import httpx


def whoami(accounts_server: str, access_token: str) -> httpx.Response:
    """The stand-in's answer at ``accounts_server``: 200 with the token's data centre and client, or 401."""
    return httpx.get(
        f"{accounts_server}/standin/whoami",
        headers={"Authorization": f"Zoho-oauthtoken {access_token}"},
        timeout=10,
    )

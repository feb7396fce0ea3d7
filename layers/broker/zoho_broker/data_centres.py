"""Zoho's accounts servers per data centre, and the allow-list the callback enforces.

The callback's ``accounts-server`` parameter decides where the grant code and the client secret are
sent, so only servers on this list are ever contacted.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from zoho_broker.errors import UntrustedAccountsServer

# Zoho's published list (https://accounts.zoho.com/oauth/serverinfo). CA is zohocloud.ca, not zoho.ca.
ZOHO_ACCOUNTS_SERVERS: dict[str, str] = {
    "us": "https://accounts.zoho.com",
    "eu": "https://accounts.zoho.eu",
    "in": "https://accounts.zoho.in",
    "au": "https://accounts.zoho.com.au",
    "jp": "https://accounts.zoho.jp",
    "ca": "https://accounts.zohocloud.ca",
    "sa": "https://accounts.zoho.sa",
    "uk": "https://accounts.zoho.uk",
    "cn": "https://accounts.zoho.com.cn",
}

DATA_CENTRE_LABELS: dict[str, str] = {
    "us": "US",
    "eu": "EU",
    "in": "India",
    "au": "Australia",
    "jp": "Japan",
    "ca": "Canada",
    "sa": "Saudi Arabia",
    "uk": "UK",
    "cn": "China",
}

DEFAULT_DATA_CENTRE = "us"


def normalise_origin(url: str) -> str:
    """Scheme and host (with port) in lower case, no path: the only part that picks a server."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # an unclosed IPv6 bracket, characters that NFKC turns into delimiters, ...
        raise UntrustedAccountsServer("The accounts server is not a valid URL.") from None
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.username or parts.password:
        raise UntrustedAccountsServer("The accounts server is not a plain http(s) origin.")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), "", "", ""))


def label(data_centre: str) -> str:
    return DATA_CENTRE_LABELS.get(data_centre, data_centre.upper())


class AccountsServers:
    """The allow-list: data-centre code to accounts-server origin."""

    def __init__(self, servers: Mapping[str, str]) -> None:
        if not servers:
            raise ValueError("at least one accounts server is needed")
        self._by_dc = {dc.lower(): normalise_origin(url) for dc, url in servers.items()}
        self._by_origin = {origin: dc for dc, origin in self._by_dc.items()}

    @property
    def by_data_centre(self) -> dict[str, str]:
        return dict(self._by_dc)

    @property
    def default_data_centre(self) -> str:
        return DEFAULT_DATA_CENTRE if DEFAULT_DATA_CENTRE in self._by_dc else next(iter(self._by_dc))

    def url_for(self, data_centre: str) -> str:
        try:
            return self._by_dc[data_centre]
        except KeyError:
            raise UntrustedAccountsServer(f"Unknown Zoho data centre {data_centre!r}.") from None

    def resolve(self, *, location: str | None, accounts_server: str | None) -> tuple[str, str]:
        """Pick (data centre, origin) from the callback's parameters, refusing anything unlisted."""
        if accounts_server:
            origin = normalise_origin(accounts_server)
            data_centre = self._by_origin.get(origin)
            if data_centre is None:
                raise UntrustedAccountsServer(
                    "The accounts server in the callback is not one of Zoho's accounts servers."
                )
            if location and location.lower() != data_centre:
                raise UntrustedAccountsServer("The callback's location and accounts server disagree.")
            return data_centre, origin
        if location:
            return location.lower(), self.url_for(location.lower())
        data_centre = self.default_data_centre
        return data_centre, self._by_dc[data_centre]

    def rewrite_zoho_origin(self, url: str) -> str:
        """Point a URL on one of Zoho's own accounts servers at the configured server of that data centre.

        Templates name Zoho's real hosts (the seeds' templates are pasted verbatim); a local
        stand-in configured for the same data centre takes their place.
        """
        parts = urlsplit(url)
        origin = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), "", "", ""))
        for data_centre, zoho_origin in ZOHO_ACCOUNTS_SERVERS.items():
            if origin == zoho_origin and data_centre in self._by_dc:
                target = urlsplit(self._by_dc[data_centre])
                return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, parts.fragment))
        return url

"""Where a connected subscription's API calls go, and what every call carries: the version's data.

The proxy and the connect flow's verification call share these, so both reach the same host with the
same headers (docs/organizations.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from zoho_broker.catalogue import CUSTOM_FIELD_PREFIX, PLACEHOLDER, IntegrationVersionFields
from zoho_broker.data_centres import ZOHO_ACCOUNTS_SERVERS, AccountsServers
from zoho_broker.errors import InvalidInput

# Zoho's API domains (the api_domain of a token answer): www.zohoapis.<tld>, one per data centre.
ZOHOAPIS_HOST = re.compile(r"^www\.zohoapis\.[a-z]{2,3}(\.[a-z]{2})?$")
# Products not on zohoapis (Commerce, Desk) have a host of their own per data centre: desk.zoho.eu.
ZOHO_PRODUCT_HOST = re.compile(r"^(?P<product>[a-z0-9-]+)\.(zoho|zohocloud)\.[a-z]{2,3}(\.[a-z]{2})?$")
# Hosts a token may be sent to although an answer named them: Zoho's own domains only.
ZOHO_DOMAIN = re.compile(r"(^|\.)(zohoapis|zoho|zohocloud)\.[a-z]{2,3}(\.[a-z]{2})?$")
_INDEXED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(\[(?P<index>[0-9]+)\])?$")


def trusted_api_domain(api_domain: str | None, accounts_servers: AccountsServers) -> str | None:
    """The api_domain's origin when a token may be sent there: https on Zoho's domains, or a configured
    accounts server's own origin (a local stand-in serves the API where it serves OAuth)."""
    if not api_domain:
        return None
    try:
        parts = urlsplit(api_domain.strip())
    except ValueError:
        return None
    origin = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), "", "", ""))
    if origin in accounts_servers.by_data_centre.values():
        return origin
    if parts.scheme == "https" and ZOHO_DOMAIN.search(parts.hostname or "") and not parts.username:
        return origin
    return None


def api_base(
    *,
    api_url: str,
    data_centre: str | None,
    api_domain: str | None,
    accounts_servers: AccountsServers,
) -> str:
    """A connected subscription's API base: its API URL re-rooted on the connected data centre.

    www.zohoapis.* URLs move to the api_domain Zoho answered; a product's own host (commerce.zoho.com)
    moves to that product's host at the data centre (commerce.zoho.eu), or to the api_domain of a local
    stand-in, which serves every product. Any other host (a sandbox, a custom URL) is the operator's
    choice and stays as it is.
    """
    parts = urlsplit(api_url)
    host = (parts.hostname or "").lower()
    domain = trusted_api_domain(api_domain, accounts_servers)
    origin: str | None = None
    if ZOHOAPIS_HOST.match(host):
        origin = domain
    elif (product := ZOHO_PRODUCT_HOST.match(host)) and data_centre:
        zoho_accounts = ZOHO_ACCOUNTS_SERVERS.get(data_centre)
        configured = accounts_servers.by_data_centre.get(data_centre)
        if zoho_accounts is not None and configured == zoho_accounts:
            suffix = (urlsplit(zoho_accounts).hostname or "").removeprefix("accounts.")
            origin = f"https://{product['product']}.{suffix}"
        elif configured is not None and domain == configured:
            origin = domain
    if origin is None:
        return api_url.rstrip("/")
    target = urlsplit(origin)
    return urlunsplit((target.scheme, target.netloc, parts.path.rstrip("/"), parts.query, ""))


def fill_custom_fields(
    template: str, version: IntegrationVersionFields, custom_fields: Mapping[str, str]
) -> str:
    """Put the subscription's custom field values (or the field's default) into a template."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1).removeprefix(CUSTOM_FIELD_PREFIX)
        field = version.custom_field(name)
        value = custom_fields.get(name) or (field.default if field is not None else None)
        if not value:
            raise InvalidInput(f"The subscription has no value for the custom field {name!r}.")
        return value

    return PLACEHOLDER.sub(substitute, template)


def api_headers(version: IntegrationVersionFields, custom_fields: Mapping[str, str]) -> dict[str, str]:
    """The headers the version adds to every API call (the Authorization header is the caller's)."""
    return {
        name: fill_custom_fields(value, version, custom_fields) for name, value in version.api_headers.items()
    }


def api_query_parameters(
    version: IntegrationVersionFields, custom_fields: Mapping[str, str]
) -> dict[str, str]:
    """The query parameters the version adds to every API call (Books' organization_id)."""
    return {
        name: fill_custom_fields(value, version, custom_fields)
        for name, value in version.api_query_parameters.items()
    }


def json_path_value(document: Any, path: str) -> Any:
    """The value at a catalogue JSON path (org[0].company_name), or None when the answer has none."""
    current = document
    for segment in path.split("."):
        match = _INDEXED.match(segment)
        if match is None or not isinstance(current, dict):
            return None
        current = current.get(match["name"])
        if match["index"] is not None:
            index = int(match["index"])
            if not isinstance(current, list) or index >= len(current):
                return None
            current = current[index]
    return current

"""Renders an integration version's OAuth URL template into Zoho's authorization URL."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

from zoho_broker.catalogue import (
    CUSTOM_FIELD_PREFIX,
    PLACEHOLDER,
    STATE_PLACEHOLDERS,
    IntegrationVersion,
)
from zoho_broker.errors import InvalidInput


def render_authorization_url(
    version: IntegrationVersion,
    *,
    client_id: str,
    state: str,
    custom_fields: Mapping[str, str],
) -> str:
    """Fill the placeholders; every value is percent-encoded so none can add a parameter."""
    values: dict[str, str] = {"Client_Id": client_id, "Scopes": ",".join(version.default_scopes)}
    values.update(dict.fromkeys(STATE_PLACEHOLDERS, state))

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith(CUSTOM_FIELD_PREFIX):
            field = name.removeprefix(CUSTOM_FIELD_PREFIX)
            value = custom_fields.get(field)
            if not value:
                raise InvalidInput(f"The subscription has no value for the custom field {field!r}.")
        else:
            value = values[name]
        # Commas stay readable: Zoho's scope lists are comma-separated.
        return quote(value, safe=",")

    if version.oauth_url_template is None:
        raise InvalidInput(f"Version {version.version!r} has no OAuth URL template (it uses a Self Client).")
    return PLACEHOLDER.sub(substitute, version.oauth_url_template)

"""The console's integration pages as HTML, and its forms read back: a version's form, its rows of
custom fields, the PATCH body made from it, and the admin API's refusal in one line."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from html import escape
from typing import Any
from urllib.parse import parse_qsl

import httpx

from broker_local.gateway import Event

VERSION_PATH = "/console/integrations/{integration}/versions/{version}"
_INTEGRATION_ID = re.compile(r"^[a-z][a-z0-9-]{1,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")


def integration_card(item: Mapping[str, Any]) -> str:
    integration = str(item.get("id") or "")
    versions = "".join(
        f'<li><a href="{escape(VERSION_PATH.format(integration=integration, version=v.get("version")))}">'
        f"version {escape(str(v.get('version')))}</a> "
        f'<span class="muted">({escape(str(v.get("authorization_type") or ""))})</span></li>'
        for v in item.get("versions") or []
    )
    origin = (
        "built in" + (", changed by an operator" if item.get("customised") else "")
        if item.get("built_in")
        else "added by an operator"
    )
    return (
        f'<li><article class="sub"><h2>{escape(str(item.get("name") or integration))}</h2>'
        f'<p class="muted"><code>{escape(integration)}</code>, {origin}</p>'
        f"<p>{escape(str(item.get('description') or ''))}</p>"
        f'<ul class="versions">{versions}</ul></article></li>'
    )


def field_row(index: int, field: Mapping[str, Any]) -> str:
    def text(name: str, label_text: str) -> str:
        return (
            f'<td><input type="text" name="field_{name}_{index}" aria-label="{label_text} {index + 1}" '
            f'value="{escape(str(field.get(name) or ""))}"></td>'
        )

    checked = " checked" if field.get("required") else ""
    return (
        f"<tr>{text('name', 'Name of field')}{text('description', 'Description of field')}"
        f"{text('default', 'Default of field')}"
        f'<td><input type="checkbox" name="field_required_{index}" value="yes" '
        f'aria-label="Field {index + 1} is required"{checked}></td></tr>'
    )


def version_address(event: Event) -> tuple[str, str] | None:
    parameters = event.get("pathParameters") or {}
    integration, version = str(parameters.get("integration", "")), str(parameters.get("version", ""))
    if _INTEGRATION_ID.fullmatch(integration) and _VERSION.fullmatch(version):
        return integration, version
    return None


def form_fields(event: Event) -> dict[str, str]:
    body = str(event.get("body") or "")
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def version_changes(form: Mapping[str, str]) -> dict[str, Any]:
    """The PATCH body from the form; the admin API validates it and names what is wrong."""
    changes: dict[str, Any] = {
        "authorization_type": form.get("authorization_type", "connect_link"),
        "default_scopes": [
            scope.strip() for scope in form.get("default_scopes", "").split(",") if scope.strip()
        ],
        "default_api_url": form.get("default_api_url", "").strip(),
        "custom_fields": [],
    }
    template = form.get("oauth_url_template", "").strip()
    if template:
        changes["oauth_url_template"] = template
    throttling = {
        key: int(form[key]) if form.get(key, "").strip().isdigit() else form.get(key, "")
        for key in ("requests_per_minute", "max_concurrent_requests")
    }
    changes["default_throttling"] = throttling
    index = 0
    while f"field_name_{index}" in form:
        name = form[f"field_name_{index}"].strip()
        if name:
            field: dict[str, Any] = {
                "name": name,
                "description": form.get(f"field_description_{index}", "").strip(),
                "required": form.get(f"field_required_{index}") == "yes",
            }
            default = form.get(f"field_default_{index}", "").strip()
            if default:
                field["default"] = default
            changes["custom_fields"].append(field)
        index += 1
    return changes


def refusal_details(answer: httpx.Response) -> str:
    """The admin API's message and every problem it named."""
    try:
        document = answer.json()
    except ValueError:
        return f"The admin API answered {answer.status_code}."
    problems = [
        f"{d.get('field')}: {d.get('message')}" for d in document.get("details") or [] if isinstance(d, dict)
    ]
    return " ".join(
        [str(document.get("message") or f"The admin API answered {answer.status_code}."), *problems]
    )

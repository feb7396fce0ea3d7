"""Rendering answers for people (compact tables, key-value blocks) or as the API's JSON.

Nothing here prints a client secret or a token: the API masks them, and only `broker token` (whose
purpose it is) writes an access token, through Output.line.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any, TextIO

from broker_cli.errors import CliError

PROGRAM = "broker"
NAME_WIDTH = 40


class Output:
    """Where answers (stdout) and errors and notes (stderr) go, and in which form."""

    def __init__(self, *, as_json: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.as_json = as_json
        self.stdout = stdout
        self.stderr = stderr

    def document(self, document: Any) -> None:
        print(json.dumps(document, indent=2, ensure_ascii=False), file=self.stdout)

    def line(self, text: str) -> None:
        print(text, file=self.stdout)

    def note(self, text: str) -> None:
        print(text, file=self.stderr)

    def error(self, error: CliError) -> None:
        print(f"{PROGRAM}: error: {error.message}", file=self.stderr)
        for detail in error.details:
            print(f"  {detail}", file=self.stderr)


def printable(value: Any) -> str:
    """A value for a terminal: '-' for nothing, control characters (escape sequences) replaced."""
    if value is None or value == "":
        return "-"
    text = str(value)
    return "".join("?" if unicodedata.category(char).startswith("C") else char for char in text)


def when(value: Any) -> str:
    """2026-11-23T20:31:02Z as 2026-11-23 20:31:02Z."""
    return printable(value).replace("T", " ", 1) if value else "-"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def subscriptions_table(subscriptions: Sequence[dict[str, Any]]) -> str:
    if not subscriptions:
        return "No subscriptions."
    rows = [
        [
            printable(s.get("subscription_id")),
            _shorten(printable(s.get("name")), NAME_WIDTH),
            printable(s.get("integration")),
            printable(s.get("status")),
            printable(s.get("data_centre")),
            when(s.get("access_token_expires_at")),
        ]
        for s in subscriptions
    ]
    return table(["ID", "NAME", "INTEGRATION", "STATUS", "DATA CENTRE", "EXPIRES"], rows)


def _throttling(value: Any) -> str:
    if not isinstance(value, dict):
        return "-"
    return (
        f"{printable(value.get('requests_per_minute'))} requests/minute, "
        f"{printable(value.get('max_concurrent_requests'))} concurrent"
    )


def _custom_fields(value: Any) -> str:
    if not isinstance(value, dict) or not value:
        return "-"
    return ", ".join(f"{printable(key)}={printable(field)}" for key, field in value.items())


def _organization(value: Any, check_error: Any) -> str:
    bound = (
        f"{printable(value.get('name'))} (id {printable(value.get('id'))})"
        if isinstance(value, dict)
        else "-"
    )
    return f"{bound}; {printable(check_error)}" if check_error else bound


def subscription_details(subscription: dict[str, Any]) -> str:
    """One subscription as label/value lines; the secrets appear only as the API masked them."""
    s = subscription
    raw_tokens = s.get("tokens")
    tokens: dict[str, Any] = raw_tokens if isinstance(raw_tokens, dict) else {}
    pairs = [
        ("ID", printable(s.get("subscription_id"))),
        ("Name", printable(s.get("name"))),
        ("Integration", f"{printable(s.get('integration'))} (version {printable(s.get('version'))})"),
        ("Status", printable(s.get("status"))),
        ("Data centre", printable(s.get("data_centre"))),
        ("API domain", printable(s.get("api_domain"))),
        ("Organization", _organization(s.get("organization"), s.get("organization_check_error"))),
        ("API URL", printable(s.get("api_url"))),
        ("Client ID", printable(s.get("client_id"))),
        ("Client secret", printable(s.get("client_secret"))),
        ("Throttling", _throttling(s.get("throttling"))),
        ("Custom fields", _custom_fields(s.get("custom_fields"))),
        ("Access token", printable(tokens.get("access_token"))),
        ("Refresh token", printable(tokens.get("refresh_token"))),
        ("Expires", when(s.get("access_token_expires_at"))),
        ("Connected at", when(s.get("connected_at"))),
        ("Last refreshed", when(s.get("last_refreshed_at"))),
        ("Next refresh", when(s.get("next_refresh_at"))),
        ("Last error", printable(s.get("last_error"))),
        ("Failing days", printable(s.get("failing_days"))),
        ("Secret name", printable(s.get("secret_name"))),
        ("Created", when(s.get("created_at"))),
        ("Updated", when(s.get("updated_at"))),
    ]
    width = max(len(label) for label, _ in pairs)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in pairs)


def integrations_table(catalogue: dict[str, Any]) -> str:
    rows = []
    for integration in catalogue.get("integrations") or []:
        versions = integration.get("versions") or []
        latest = versions[-1] if versions else {}
        fields = [
            printable(field.get("name")) + (" (required)" if field.get("required") else "")
            for field in latest.get("custom_fields") or []
        ]
        rows.append(
            [
                printable(integration.get("id")),
                printable(integration.get("name")),
                ", ".join(printable(v.get("version")) for v in versions) or "-",
                ", ".join(fields) or "-",
            ]
        )
    if not rows:
        return "No integrations."
    return table(["ID", "NAME", "VERSIONS", "CUSTOM FIELDS (LATEST VERSION)"], rows)


def version_details(version: dict[str, Any]) -> str:
    """One integration version, its template whole (it is what an integrator checks)."""
    fields = [
        printable(field.get("name"))
        + (" (required)" if field.get("required") else "")
        + (f" default {printable(field.get('default'))}" if field.get("default") else "")
        for field in version.get("custom_fields") or []
    ]
    throttling = version.get("default_throttling") or {}
    pairs = [
        ("Version", printable(version.get("version"))),
        ("Authorization type", printable(version.get("authorization_type"))),
        ("OAuth URL template", printable(version.get("oauth_url_template"))),
        ("Token path", printable(version.get("token_path"))),
        ("Revoke path", printable(version.get("revoke_path"))),
        ("Default scopes", ", ".join(printable(s) for s in version.get("default_scopes") or []) or "-"),
        ("Default API URL", printable(version.get("default_api_url"))),
        ("Custom fields", ", ".join(fields) or "-"),
        (
            "Default throttling",
            f"{printable(throttling.get('requests_per_minute'))}/min, "
            f"{printable(throttling.get('max_concurrent_requests'))} at once",
        ),
        ("Changed by", printable(version.get("changed_by"))),
        ("Changed at", when(version.get("changed_at"))),
    ]
    width = max(len(label) for label, _ in pairs)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in pairs)

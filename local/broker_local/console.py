"""The local console: the runner's subscriptions at a glance, with an Authenticate button each, and the
integrations with their versions, editable.

`GET /` lists the subscriptions (status, data centre, token expiry, masked tokens) and `POST
/console/subscriptions/<id>/authenticate` starts the consent flow. `GET /console/integrations` lists the
integrations and versions; `GET` and `POST /console/integrations/<id>/versions/<version>` show a plain
form for a version's template, scopes, API URL, authorization type and custom fields, and save it with
the admin API's PATCH (its refusal, naming the problem, shown above the form as sent). The console is a real client of
the broker's admin API over HTTP, so it sees exactly what an operator's tooling sees, and serves
server-rendered HTML with the same strict headers as the broker's own pages (no script at all).
Only the local runner serves it; no Lambda function does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import urlsplit

import httpx

from broker_local.console_actions import (
    ACTIONS_CSS,
    AUTHENTICATE_PATH,
    ConsoleActions,
    events_panel,
    heading_id,
    not_answered,
    subscription_actions,
    zoho_controls_panel,
)
from broker_local.console_forms import (
    VERSION_PATH,
    field_row,
    form_fields,
    integration_card,
    refusal_details,
    version_address,
    version_changes,
)
from broker_local.event_feed import EventFeed
from broker_local.gateway import INTERNAL_HEADER, Event, ExtraRoute, Response
from broker_local.zoho_standin import ZohoStandIn
from zoho_broker import pages
from zoho_broker.data_centres import ZOHO_ACCOUNTS_SERVERS, label
from zoho_broker.wording import problem_in_words

TITLE = "Zoho OAuth broker: local console"
INTEGRATIONS_PATH = "/console/integrations"
_BLANK_FIELD_ROWS = 2  # empty rows under a version's custom fields, to add new ones
_SUBSCRIPTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_PAGES = 20  # 100 subscriptions a page: more than anyone runs locally

CONSOLE_CSS = (
    "main.console{max-width:72rem;margin:0 auto;padding:1.5rem 1.25rem 3rem;background:none;"
    "box-shadow:none;border:0;border-radius:0;min-height:0}"
    ".bar{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:.75rem;"
    "margin-bottom:1rem}.bar h1{margin:0}"
    ".subs{list-style:none;margin:1rem 0;padding:0;display:grid;gap:1rem;"
    "grid-template-columns:repeat(auto-fill,minmax(min(100%,22rem),1fr))}"
    ".sub{background:#fff;border-radius:12px;box-shadow:0 1px 4px rgba(0,0,0,.12);padding:1.25rem;"
    "border-left:6px solid #5b6272;height:100%;display:flex;flex-direction:column}"
    ".sub h2{font-size:1.15rem;margin:0}"
    ".status{align-self:flex-start;margin:.4rem 0 .75rem;padding:.1rem .6rem;border-radius:999px;"
    "font-size:.9rem;font-weight:600;border:1px solid currentColor;color:#3d4452;background:#eef0f3}"
    ".connected .status{color:#13734b;background:#e7f5ee}.sub.connected{border-left-color:#13734b}"
    ".needs_reauthentication .status{color:#8a3b00;background:#fff1e0}"
    ".sub.needs_reauthentication{border-left-color:#b35c00}"
    ".sub dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.3rem 1rem;margin:0 0 1rem}"
    ".sub dt{color:#5b6272;font-size:.9rem}.sub dd{margin:0}.nowrap{white-space:nowrap}"
    "code{font-family:ui-monospace,'SFMono-Regular',Menlo,Consolas,monospace;font-size:.9rem;"
    "overflow-wrap:anywhere}"
    ".sub form{margin-top:auto}"
    "button,.button{font:inherit;font-weight:600;cursor:pointer;border-radius:8px;padding:.55rem 1.1rem;"
    "border:2px solid #0b57d0;background:#0b57d0;color:#fff;text-decoration:none;display:inline-block}"
    "button:hover{background:#0842a0;border-color:#0842a0}"
    ".button.secondary{background:#fff;color:#0b57d0}.button.secondary:hover{background:#eef3fd}"
    ".problem{color:#a4262c}"
    ".version-form label{display:block;font-weight:600;margin:1rem 0 .25rem}"
    ".version-form textarea,.version-form input[type=text],.version-form input[type=url],.version-form select"
    "{font:inherit;width:100%;box-sizing:border-box;padding:.4rem}"
    ".version-form textarea{font-family:ui-monospace,Menlo,Consolas,monospace;min-height:7rem}"
    ".fields{width:100%;border-collapse:collapse}.fields td,.fields th{padding:.25rem;text-align:left}"
    ".fields input[type=text]{width:100%;box-sizing:border-box}"
    ".versions{list-style:none;padding:0;margin:.5rem 0}.versions li{margin:.25rem 0}"
    "@media (max-width:36rem){.fields,.fields tbody,.fields tr,.fields td{display:block;width:100%}"
    ".fields thead{display:none}}"
    "footer{margin-top:2rem}"
    "@media (max-width:36rem){main.console{padding:1rem .75rem 2rem}.bar h1{font-size:1.25rem}"
    ".sub dl{grid-template-columns:minmax(0,1fr);gap:0}.sub dt{margin-top:.5rem}"
    "button{width:100%}}"
)
CSS = pages.BASE_CSS + CONSOLE_CSS + ACTIONS_CSS

_STATUS = {
    "connected": ("\u2713", "connected"),
    "not_connected": ("\u25cb", "not connected"),
    "needs_reauthentication": ("!", "needs re-authentication"),
}


class AdminApiError(Exception):
    """The admin API did not answer as expected; the message is safe to show."""


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Console:
    """The console's two routes, talking to the admin API at `base_url`.

    `accounts_servers` are where the consent flow goes after the broker's redirect (None: Zoho's own);
    the form's CSP allows them, since browsers check form-action on every redirect of a submission.
    """

    def __init__(
        self,
        base_url: str,
        accounts_servers: Mapping[str, str] | None = None,
        *,
        standin: ZohoStandIn | None = None,
        events: EventFeed | None = None,
        timeout: float = 45.0,  # a refresh against a slow Zoho takes the admin API up to its 29 s
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._standin = standin
        self._events = events
        self._actions = ConsoleActions(self, standin)
        self._timeout = timeout
        self._transport = transport
        servers = accounts_servers or ZOHO_ACCOUNTS_SERVERS
        form_action = ["'self'", *sorted({_origin(url) for url in servers.values()})]
        self.headers = pages.security_headers(CSS, form_action=form_action)

    def routes(self) -> dict[tuple[str, str], ExtraRoute]:
        return {
            ("GET", "/"): self.index,
            ("POST", AUTHENTICATE_PATH): self.authenticate,
            ("GET", INTEGRATIONS_PATH): self.integrations,
            ("GET", VERSION_PATH): self.version,
            ("POST", VERSION_PATH): self.save_version,
        } | self._actions.routes()

    # ---------------------------------------------------------------------------------------------
    # Routes

    def index(self, event: Event, *, notice: str = "", problem: bool = False, status: int = 200) -> Response:
        """The subscriptions; after an action, what happened written above them."""
        try:
            with self._admin() as admin:
                names = self._integration_names(admin)
                rows = [self._detail(admin, item["subscription_id"]) for item in self._list(admin)]
        except AdminApiError as error:
            return self.problem(502, str(error))
        if self._events is not None:
            self._events.drain()
        note = (
            f'<p class="notice{" problem" if problem else ""}" role="{"alert" if problem else "status"}">'
            f"{escape(notice)}</p>"
            if notice
            else ""
        )
        return self._page(status, self._index_body(rows, names, note))

    def framed(self, status: int, body: str) -> Response:
        return self._page(status, f'<main class="console">{self._bar()}{body}</main>')

    def problem(self, status: int, message: str) -> Response:
        body = f'<p class="problem" role="alert">{escape(message)}</p><p><a href="/">Back to the subscriptions</a></p>'
        return self.framed(status, body)

    def checked_subscription(self, event: Event) -> tuple[str, Response | None]:
        """The subscription id a console form posts to, or the page refusing the request."""
        if not self._same_origin(event):
            return "", self.problem(403, "The request did not come from this console.")
        subscription_id = (event.get("pathParameters") or {}).get("subscription_id", "")
        if not _SUBSCRIPTION_ID.fullmatch(subscription_id):
            return "", self.problem(404, "There is no such subscription.")
        return subscription_id, None

    @staticmethod
    def when(value: object, *, expiry: bool = False) -> str:
        return _when(value, expiry=expiry)

    def authenticate(self, event: Event) -> Response:
        subscription_id, refused = self.checked_subscription(event)
        if refused is not None:
            return refused
        try:
            with self._admin() as admin:
                answer = admin.post(f"/admin/subscriptions/{subscription_id}/connect-links")
        except httpx.HTTPError as error:
            return self.problem(502, not_answered(error))
        if answer.status_code == 404:
            return self.problem(404, "There is no such subscription.")
        if answer.status_code != 201:
            return self.problem(502, self._refusal(answer))
        # 307 keeps the POST: the link's own Continue step is this same button press. The cookie tells
        # the Connected page to link back here.
        return {
            "cookies": [
                f"{pages.CONSOLE_FLOW_COOKIE}=1; Path=/oauth/callback; Max-Age=900; HttpOnly; SameSite=Lax"
            ],
            "statusCode": 307,
            "headers": {
                "Location": str(answer.json()["url"]),
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
            },
            "body": "",
        }

    def integrations(self, event: Event) -> Response:
        try:
            with self._admin() as admin:
                catalogue = self._get(admin, "/admin/integrations")
        except AdminApiError as error:
            return self.problem(502, str(error))
        items = "".join(integration_card(item) for item in catalogue.get("integrations", []))
        return self._page(
            200,
            f'<main class="console">{self._bar()}'
            '<p class="muted">The built-ins ship with the broker; a change stores the operator\'s copy, '
            "which then replaces the built-in as a whole. A change applies to the next consent.</p>"
            f'<ul class="subs" aria-label="Integrations">{items}</ul></main>',
        )

    def version(self, event: Event) -> Response:
        where = version_address(event)
        if where is None:
            return self.problem(404, "There is no such version.")
        try:
            with self._admin() as admin:
                current = self._get(admin, "/admin/integrations/{}/versions/{}".format(*where))
        except AdminApiError as error:
            return self.problem(404 if "404" in str(error) else 502, str(error))
        return self._page(200, self._version_body(where, current, problem=None))

    def save_version(self, event: Event) -> Response:
        if not self._same_origin(event):
            return self.problem(403, "The request did not come from this console.")
        where = version_address(event)
        if where is None:
            return self.problem(404, "There is no such version.")
        form = form_fields(event)
        changes = version_changes(form)
        try:
            with self._admin() as admin:
                answer = admin.patch("/admin/integrations/{}/versions/{}".format(*where), json=changes)
        except httpx.HTTPError as error:
            return self.problem(502, not_answered(error))
        if answer.status_code == 200:
            return self._page(200, self._version_body(where, answer.json(), problem=None, saved=True))
        # Shown as sent, with what is wrong, so the integrator can fix it rather than type it again.
        sent = {**changes, "version": where[1]}
        return self._page(
            answer.status_code, self._version_body(where, sent, problem=refusal_details(answer))
        )

    # ---------------------------------------------------------------------------------------------
    # The admin API

    def _admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            timeout=self._timeout,
            transport=self._transport,
            headers={INTERNAL_HEADER: "console"},  # logged at DEBUG: the page's own line says it all
        )

    def _get(self, admin: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
        try:
            answer = admin.get(path, params=params or None)
        except httpx.HTTPError as error:
            raise AdminApiError(not_answered(error)) from error
        if answer.status_code != 200:
            raise AdminApiError(self._refusal(answer))
        document: dict[str, Any] = answer.json()
        return document

    def _integration_names(self, admin: httpx.Client) -> dict[str, str]:
        catalogue = self._get(admin, "/admin/integrations")
        return {str(item["id"]): str(item["name"]) for item in catalogue.get("integrations", [])}

    def _list(self, admin: httpx.Client) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
            page = self._get(admin, "/admin/subscriptions", **params)
            found += page.get("subscriptions", [])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return found

    def _detail(self, admin: httpx.Client, subscription_id: str) -> dict[str, Any]:
        """One subscription with its masked tokens (lists leave them out)."""
        return self._get(admin, f"/admin/subscriptions/{subscription_id}")

    @staticmethod
    def _refusal(answer: httpx.Response) -> str:
        try:
            message = str(answer.json().get("message") or "")
        except ValueError:
            message = ""
        return f"The admin API answered {answer.status_code}. {message}".strip()

    @staticmethod
    def _same_origin(event: Event) -> bool:
        """Refuse forms posted from other sites (a cross-site form could start a consent flow).

        Browsers say where a POST comes from in Sec-Fetch-Site. Origin is the fallback for older ones;
        under `Referrer-Policy: no-referrer` it is "null" even for the console's own forms. Clients
        that send neither (curl) are not browsers, and so no cross-site forgery.
        """
        headers: dict[str, str] = event.get("headers") or {}
        site = headers.get("sec-fetch-site")
        if site is not None:
            return site == "same-origin"
        origin = headers.get("origin")
        return origin in (None, "null") or origin == f"http://{headers.get('host', '')}"

    # ---------------------------------------------------------------------------------------------
    # HTML

    def _page(self, status: int, body: str) -> Response:
        return {
            "statusCode": status,
            "headers": {"Content-Type": "text/html; charset=utf-8"} | self.headers,
            "body": pages.document(title=TITLE, body_html=body, css=CSS),
        }

    @staticmethod
    def _bar() -> str:
        return (
            f'<header class="bar"><h1>{escape(TITLE)}</h1>'
            '<nav><a class="button secondary" href="/">Subscriptions</a> '
            f'<a class="button secondary" href="{INTEGRATIONS_PATH}">Integrations</a></nav></header>'
        )

    def _version_body(
        self, where: tuple[str, str], version: Mapping[str, Any], *, problem: str | None, saved: bool = False
    ) -> str:
        integration, name = where
        action = escape(VERSION_PATH.format(integration=integration, version=name))
        note = (
            f'<p class="problem" role="alert">{escape(problem)}</p>'
            if problem
            else '<p role="status">Saved: the next consent uses it.</p>'
            if saved
            else ""
        )
        kind = str(version.get("authorization_type") or "connect_link")
        options = "".join(
            f'<option value="{value}"{" selected" if value == kind else ""}>{text}</option>'
            for value, text in (
                ("connect_link", "connect link (OAuth initiated here)"),
                ("self_client", "Self Client grant code"),
            )
        )
        throttling = version.get("default_throttling") or {}
        fields = list(version.get("custom_fields") or []) + [{}] * _BLANK_FIELD_ROWS
        rows = "".join(field_row(index, field) for index, field in enumerate(fields))
        changed = (
            f'<p class="muted">Last changed by {escape(str(version.get("changed_by")))} at '
            f"{_when(version.get('changed_at'))}</p>"
            if version.get("changed_by")
            else ""
        )
        return (
            f'<main class="console">{self._bar()}'
            f"<h2>{escape(integration)} version {escape(name)}</h2>{changed}{note}"
            f'<form class="version-form" method="post" action="{action}">'
            '<label for="authorization_type">Authorization type</label>'
            f'<select id="authorization_type" name="authorization_type">{options}</select>'
            '<label for="oauth_url_template">OAuth URL template</label>'
            '<textarea id="oauth_url_template" name="oauth_url_template" spellcheck="false">'
            f"{escape(str(version.get('oauth_url_template') or ''))}</textarea>"
            '<p class="muted">Placeholders: {Client_Id}, {iPaaSState} (or {State}), {Scopes}, '
            "{SystemTypeVersion:&lt;custom field&gt;}.</p>"
            '<label for="default_scopes">Default scopes (comma-separated)</label>'
            '<input type="text" id="default_scopes" name="default_scopes" '
            f'value="{escape(", ".join(str(v) for v in version.get("default_scopes") or []))}">'
            '<label for="default_api_url">Default API URL</label>'
            '<input type="url" id="default_api_url" name="default_api_url" '
            f'value="{escape(str(version.get("default_api_url") or ""))}">'
            '<label for="requests_per_minute">Default requests per minute</label>'
            '<input type="text" inputmode="numeric" id="requests_per_minute" name="requests_per_minute" '
            f'value="{escape(str(throttling.get("requests_per_minute") or ""))}">'
            '<label for="max_concurrent_requests">Default concurrent requests</label>'
            '<input type="text" inputmode="numeric" id="max_concurrent_requests" name="max_concurrent_requests" '
            f'value="{escape(str(throttling.get("max_concurrent_requests") or ""))}">'
            "<h3>Custom fields</h3>"
            '<table class="fields"><thead><tr><th>Name</th><th>Description</th><th>Default</th>'
            f"<th>Required</th></tr></thead><tbody>{rows}</tbody></table>"
            '<p class="muted">A row without a name is left out; empty rows add fields.</p>'
            '<p><button type="submit">Save version</button> '
            f'<a class="button secondary" href="{INTEGRATIONS_PATH}">Back to the integrations</a></p>'
            "</form></main>"
        )

    def _index_body(self, rows: list[dict[str, Any]], names: Mapping[str, str], note: str = "") -> str:
        controls = self._standin is not None
        if rows:
            items = "".join(
                _row(row, names, controls) for row in sorted(rows, key=lambda r: str(r["name"]).lower())
            )
            listing = f'<ul class="subs" aria-label="Subscriptions">{items}</ul>'
        else:
            listing = "<p>No subscriptions yet. Create one with <code>POST /admin/subscriptions</code>.</p>"
        count = f"{len(rows)} subscription" + ("" if len(rows) == 1 else "s")
        return (
            f'<main class="console">{self._bar()}{note}'
            f'<p class="muted">{count}. <strong>Authenticate</strong> opens a single-use connect link in this '
            "browser: pick the account's data centre at Zoho and click Accept. <strong>Connect link</strong> "
            "makes one to send to someone else.</p>"
            f"{listing}"
            + (zoho_controls_panel(self._standin.accounts_servers) if self._standin is not None else "")
            + (events_panel(self._events.recent()) if self._events is not None else "")
            + '<footer class="muted">Admin API: <a href="/admin/subscriptions">/admin/subscriptions</a> '
            '&middot; <a href="/admin/openapi.json">OpenAPI document</a></footer></main>'
        )


def _row(row: Mapping[str, Any], names: Mapping[str, str], zoho_controls: bool = False) -> str:
    subscription_id = str(row["subscription_id"])
    heading = heading_id(subscription_id)
    status = str(row.get("status") or "not_connected")
    symbol, status_text = _STATUS.get(status, ("?", status.replace("_", " ")))
    integration = str(row.get("integration") or "")
    data_centre = row.get("data_centre")
    tokens = row.get("tokens") or {}
    fields = [
        (
            "Integration",
            f"{escape(names.get(integration, integration))} "
            f'<span class="muted nowrap">({escape(integration)} v{escape(str(row.get("version") or ""))})</span>',
        ),
        ("Subscription id", f"<code>{escape(subscription_id)}</code>"),
        ("Data centre", escape(label(str(data_centre))) if data_centre else "&mdash;"),
        ("API domain", escape(str(row.get("api_domain") or "")) or "&mdash;"),
        (
            "Organization",
            escape(
                str((row.get("organization") or {}).get("name") or row.get("organization_check_error") or "")
            )
            or "&mdash;",
        ),
        ("Connected at", _when(row.get("connected_at"))),
    ]
    if status == "connected":  # needing re-authentication, the token's expiry means nothing
        fields += [
            ("Access token expires", _when(row.get("access_token_expires_at"), expiry=True)),
            ("Last refresh", _when(row.get("last_refreshed_at"))),
            ("Next refresh", _when(row.get("next_refresh_at"))),
        ]
    fields += [
        ("Access token", _masked(tokens.get("access_token"))),
        ("Refresh token", _masked(tokens.get("refresh_token"))),
    ]
    if row.get("last_error"):
        words = problem_in_words(str(row["last_error"]))
        fields.append(("Last error", f'<span class="problem">{escape(words)}</span>'))
    details = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in fields)
    return (
        f'<li><article class="sub {status if status in _STATUS else "unknown"}" aria-labelledby="{heading}">'
        f'<h2 id="{heading}">{escape(str(row.get("name") or subscription_id))}</h2>'
        f'<p class="status"><span aria-hidden="true">{symbol}</span> '
        f'<span class="status-text">{escape(status_text)}</span></p>'
        f"<dl>{details}</dl>{subscription_actions(row, zoho_controls=zoho_controls)}"
        "</article></li>"
    )


def _masked(value: object) -> str:
    return f"<code>{escape(str(value))}</code>" if value else "&mdash;"


def _when(value: object, *, expiry: bool = False) -> str:
    """An ISO timestamp as UTC minutes, with how far away it is."""
    if not value:
        return "&mdash;"
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return escape(str(value))
    seconds = (moment - datetime.now(UTC)).total_seconds()
    minutes = round(seconds / 60)
    if seconds < 0 and expiry:
        relative = "expired"
    elif minutes == 0:
        relative = "just now" if seconds <= 0 else "in under a minute"
    elif minutes < 0:
        relative = f"{-minutes} min ago" if minutes > -120 else f"{-minutes // 60} h ago"
    elif minutes < 120:
        relative = f"in {minutes} min"
    else:
        relative = f"in {minutes // 60} h"
    return (
        f'<time datetime="{escape(moment.isoformat())}">{moment:%Y-%m-%d %H:%M} UTC</time> '
        f'<span class="muted">({relative})</span>'
    )

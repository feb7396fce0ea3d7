"""The console's actions on a subscription, the Zoho stand-in's failure controls and the recent events.

Every action is a plain HTML form POSTed to the console, which calls the broker's admin API like any
other client (connect link, refresh, revoke) or, for the stand-in's controls, plays what a person or
Zoho would do: the person removes the app's access at Zoho (its refresh tokens die), or Zoho's token
endpoint times out, fails with 5xx or rate-limits the next calls. The answer is the console again, with
what happened written at the top; the broker's reaction (backoff, needs re-authentication, events)
shows there as it would deployed.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping
from html import escape
from typing import TYPE_CHECKING, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker_local import favicon
from broker_local.console_forms import form_fields
from broker_local.event_feed import CaughtEvent
from broker_local.gateway import Event, ExtraRoute, Response
from zoho_broker.wording import problem_in_words

if TYPE_CHECKING:
    from broker_local.console import Console
    from broker_local.zoho_standin import ZohoStandIn

AUTHENTICATE_PATH = "/console/subscriptions/{subscription_id}/authenticate"
CONNECT_LINK_PATH = "/console/subscriptions/{subscription_id}/connect-link"
REFRESH_PATH = "/console/subscriptions/{subscription_id}/refresh"
REVOKE_PATH = "/console/subscriptions/{subscription_id}/revoke"
ZOHO_REVOKE_PATH = "/console/subscriptions/{subscription_id}/zoho-revoke"
ZOHO_FAULTS_PATH = "/console/zoho/faults"
FAVICON_PATH = "/favicon.ico"

FAULT_CHOICES = {
    "timeout": "time out (no answer for 30 s)",
    "server_error": "fail with HTTP 500",
    "unavailable": "fail with HTTP 503",
    "rate_limited": "be rate limited (too many requests)",
}

ACTIONS_CSS = (
    ".actions{display:flex;flex-wrap:wrap;gap:.5rem;margin-top:auto}.actions form{margin:0}"
    ".actions button{padding:.45rem .9rem;margin:0}"
    "button.secondary{background:#fff;color:#0b57d0}button.secondary:hover{background:#eef3fd}"
    "button.danger{background:#fff;color:#a4262c;border-color:#a4262c}button.danger:hover{background:#fdecec}"
    ".notice{background:#fff;border-left:6px solid #0b57d0;border-radius:8px;padding:.75rem 1rem;margin:1rem 0}"
    ".notice.problem{border-left-color:#a4262c}"
    ".panel{background:#fff;border-radius:12px;box-shadow:0 1px 4px rgba(0,0,0,.12);padding:1.25rem;"
    "margin:1.5rem 0}.panel h2{font-size:1.15rem;margin:0 0 .5rem}"
    ".panel form{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end}"
    ".panel label{display:flex;flex-direction:column;font-size:.9rem;color:#5b6272}"
    ".panel select,.panel input{font:inherit;padding:.35rem}"
    ".link{width:100%;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9rem;padding:.5rem}"
    ".events{width:100%;border-collapse:collapse;font-size:.9rem}"
    ".events th,.events td{text-align:left;padding:.3rem .5rem;border-top:1px solid #e3e6ea;vertical-align:top}"
)


class FaultForm(BaseModel):
    """The failure-controls form: which failure, for how many of the next token calls, where."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["timeout", "server_error", "unavailable", "rate_limited"]
    count: int = Field(ge=1, le=20)
    data_centre: str = Field(pattern=r"^(any|[a-z]{2,3})$")


def subscription_actions(row: Mapping[str, Any], *, zoho_controls: bool) -> str:
    """The forms under a subscription's card; which ones depends on its status."""
    subscription_id = str(row["subscription_id"])
    status = str(row.get("status") or "not_connected")
    heading = heading_id(subscription_id)

    def form(path: str, label: str, css: str = "") -> str:
        action = escape(path.format(subscription_id=subscription_id))
        kind = f' class="{css}"' if css else ""
        return (
            f'<form method="post" action="{action}"><button type="submit"{kind} '
            f'aria-describedby="{heading}">{label}</button></form>'
        )

    # Authenticate and Reconnect both go through a fresh connect link in this browser.
    forms = [form(AUTHENTICATE_PATH, "Authenticate")]
    if status != "not_connected":
        forms = [form(AUTHENTICATE_PATH, "Reconnect")]
    forms.append(form(CONNECT_LINK_PATH, "Connect link", "secondary"))
    if status == "connected":
        forms.append(form(REFRESH_PATH, "Refresh", "secondary"))
    if status != "not_connected":
        forms.append(form(REVOKE_PATH, "Revoke", "danger"))
    if zoho_controls and status == "connected":
        forms.append(form(ZOHO_REVOKE_PATH, "Revoke at Zoho", "danger"))
    return f'<div class="actions">{"".join(forms)}</div>'


def not_answered(error: httpx.HTTPError) -> str:
    return f"The admin API did not answer ({type(error).__name__})."


def heading_id(subscription_id: str) -> str:
    """The id of a subscription card's heading, which its buttons name as what they act on."""
    return "sub-" + re.sub(r"[^A-Za-z0-9_-]", "_", subscription_id)


def zoho_controls_panel(data_centres: Iterable[str]) -> str:
    """The stand-in's failure controls: the next N token calls fail one way."""
    kinds = "".join(f'<option value="{k}">{escape(text)}</option>' for k, text in FAULT_CHOICES.items())
    places = '<option value="any">any data centre</option>' + "".join(
        f'<option value="{escape(dc)}">{escape(dc.upper())}</option>' for dc in data_centres
    )
    return (
        '<section class="panel" aria-labelledby="zoho-controls"><h2 id="zoho-controls">Zoho stand-in</h2>'
        '<p class="muted">Make Zoho misbehave to see what the broker does: failed refreshes back off and '
        "retry; a refresh token revoked at Zoho (<strong>Revoke at Zoho</strong> on a card) makes the "
        "subscription need re-authentication at its next refresh.</p>"
        f'<form method="post" action="{ZOHO_FAULTS_PATH}">'
        f'<label>The next token calls will<select name="kind">{kinds}</select></label>'
        '<label>How many<input type="number" name="count" value="1" min="1" max="20"></label>'
        f'<label>Where<select name="data_centre">{places}</select></label>'
        '<button type="submit" class="secondary">Make Zoho fail</button></form></section>'
    )


def events_panel(events: list[CaughtEvent]) -> str:
    """The broker's recent EventBridge events, newest first (no secrets in them by design)."""
    if not events:
        rows = '<tr><td colspan="3">None yet. The broker announces a subscription that needs '
        rows += "re-authentication, one that recovers, and a connection that replaces a live one.</td></tr>"
    else:
        rows = "".join(
            f"<tr><td><time>{escape(event.time)}</time></td><td>{escape(event.detail_type)}</td>"
            f"<td><code>{escape(_detail(event.detail))}</code></td></tr>"
            for event in events
        )
    return (
        '<section class="panel" aria-labelledby="recent-events"><h2 id="recent-events">Recent events</h2>'
        '<table class="events"><thead><tr><th>Time (UTC)</th><th>Event</th><th>Detail</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></section>"
    )


def _detail(detail: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in detail.items())


class ConsoleActions:
    """The routes behind the forms above; `console` renders the pages and talks to the admin API."""

    def __init__(self, console: Console, standin: ZohoStandIn | None) -> None:
        self._console = console
        self._standin = standin

    def routes(self) -> dict[tuple[str, str], ExtraRoute]:
        routes: dict[tuple[str, str], ExtraRoute] = {
            ("GET", FAVICON_PATH): self.favicon,
            ("POST", CONNECT_LINK_PATH): self.connect_link,
            ("POST", REFRESH_PATH): self._admin_action("refresh", self._refreshed),
            ("POST", REVOKE_PATH): self._admin_action("revoke", self._revoked),
        }
        if self._standin is not None:
            routes[("POST", ZOHO_REVOKE_PATH)] = self.zoho_revoke
            routes[("POST", ZOHO_FAULTS_PATH)] = self.zoho_faults
        return routes

    @staticmethod
    def favicon(event: Event) -> Response:
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "image/png", "Cache-Control": "max-age=86400"},
            "body": base64.b64encode(favicon.CONSOLE).decode(),
            "isBase64Encoded": True,
        }

    def connect_link(self, event: Event) -> Response:
        """A link to send to the person who owns the Zoho account, with its expiry, to copy."""
        subscription_id, refused = self._console.checked_subscription(event)
        if refused is not None:
            return refused
        try:
            with self._console._admin() as admin:
                subscription = admin.get(f"/admin/subscriptions/{subscription_id}")
                answer = admin.post(f"/admin/subscriptions/{subscription_id}/connect-links")
        except httpx.HTTPError as error:
            return self._console.problem(502, not_answered(error))
        if answer.status_code != 201 or subscription.status_code != 200:
            return self._console.problem(answer.status_code, self._console._refusal(answer))
        link = answer.json()
        name = str(subscription.json().get("name") or subscription_id)
        body = (
            f"<h2>Connect link for {escape(name)}</h2>"
            '<p><label for="connect-link">Send this link to the person who owns the Zoho account. '
            "It works once, in the browser that opens it first:</label></p>"
            f'<p><input id="connect-link" class="link" type="text" readonly value="{escape(str(link["url"]))}">'
            f"</p><p>Expires {self._console.when(link.get('expires_at'), expiry=True)}.</p>"
            '<p class="muted">Authenticate on the console opens such a link in your own browser instead.</p>'
            '<p><a href="/">Back to the subscriptions</a></p>'
        )
        return self._console.framed(200, body)

    def zoho_revoke(self, event: Event) -> Response:
        """What the person does in their Zoho account: remove this client's access."""
        assert self._standin is not None
        subscription_id, refused = self._console.checked_subscription(event)
        if refused is not None:
            return refused
        answer, failed = self._ask("GET", f"/admin/subscriptions/{subscription_id}")
        if answer is None:
            return failed
        if answer.status_code != 200:
            return self._console.problem(answer.status_code, self._console._refusal(answer))
        subscription = answer.json()
        count = self._standin.revoke_client(str(subscription["client_id"]))
        return self._console.index(
            event,
            notice=f"At Zoho, the person removed the access of {subscription['name']}'s client "
            f"({count} refresh token{'' if count == 1 else 's'} revoked). The broker finds out at its next "
            "refresh: press Refresh, or wait for the refresher.",
        )

    def zoho_faults(self, event: Event) -> Response:
        assert self._standin is not None
        if not self._console._same_origin(event):
            return self._console.problem(403, "The request did not come from this console.")
        try:
            form = FaultForm.model_validate(form_fields(event))
            where = None if form.data_centre == "any" else form.data_centre
            self._standin.inject_fault(form.kind, form.count, where)
        except (ValidationError, ValueError) as error:
            fields = (
                ", ".join(str(item["loc"][0]) for item in error.errors())
                if isinstance(error, ValidationError)
                else str(error)
            )
            return self._console.index(
                event, notice=f"Nothing changed: check {fields}.", problem=True, status=400
            )
        calls = "call" if form.count == 1 else f"{form.count} calls"
        place = "any data centre" if where is None else f"the {form.data_centre.upper()} data centre"
        return self._console.index(
            event,
            notice=f"Zoho's next token {calls} at {place} will {FAULT_CHOICES[form.kind]}.",
        )

    # ---------------------------------------------------------------------------------------------

    def _ask(self, method: str, path: str) -> tuple[httpx.Response | None, Response]:
        """The admin API's answer, or None and the page saying it did not answer."""
        try:
            with self._console._admin() as admin:
                return admin.request(method, path), {}
        except httpx.HTTPError as error:
            return None, self._console.problem(502, not_answered(error))

    def _admin_action(self, action: str, done: Callable[[dict[str, Any]], str]) -> ExtraRoute:
        def route(event: Event) -> Response:
            subscription_id, refused = self._console.checked_subscription(event)
            if refused is not None:
                return refused
            answer, failed = self._ask("POST", f"/admin/subscriptions/{subscription_id}/{action}")
            if answer is None:
                return failed
            if answer.status_code == 200:
                return self._console.index(event, notice=done(answer.json()))
            return self._console.index(
                event, notice=_refused(answer), problem=True, status=answer.status_code
            )

        return route

    def _refreshed(self, outcome: dict[str, Any]) -> str:
        result = str(outcome.get("result") or "")
        if result == "refreshed":
            return f"Refreshed: the access token now expires {_plain_when(self._console, outcome)}."
        error = outcome.get("error")
        return f"Not refreshed ({result.replace('_', ' ')}). " + (
            problem_in_words(str(error)) if error else ""
        )

    @staticmethod
    def _revoked(subscription: dict[str, Any]) -> str:
        return (
            f"Revoked: {subscription.get('name')} is disconnected and its refresh token revoked at Zoho. "
            "Reconnect sends a person through Zoho again."
        )


def _plain_when(console: Console, outcome: Mapping[str, Any]) -> str:
    text = console.when(outcome.get("access_token_expires_at"), expiry=True)
    return re.sub(r"<[^>]+>", "", text).replace("&mdash;", "-")


def _refused(answer: httpx.Response) -> str:
    """The admin API's refusal, in words (its message already is; a Zoho code is translated)."""
    try:
        document = answer.json()
    except ValueError:
        return f"The admin API answered {answer.status_code}."
    message = str(document.get("message") or f"The admin API answered {answer.status_code}.")
    code = re.search(r" \(([a-z][a-z_0-9]*)\)", message)
    if code is None:
        return message
    return f"{message.replace(code.group(0), '')} {problem_in_words(code.group(1))}"

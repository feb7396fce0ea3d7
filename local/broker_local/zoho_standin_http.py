"""The Zoho stand-in's HTTP side: the answers it sends, and one server per data centre.

Each data centre's server parses a request, records it and hands it to the one world they share (the
stand-in's accounts endpoints, or its API where api_domain points); nothing is ever printed, since request
lines carry grant codes and tokens.
"""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from broker_local.zoho_standin import ZohoStandIn

TITLE = "Zoho Accounts (stand-in)"
JSON_TYPE = "application/json;charset=UTF-8"  # exactly what Zoho sends
HTML_TYPE = "text/html; charset=utf-8"
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received, so tests can assert on what the broker sent and where."""

    data_centre: str
    method: str
    path: str
    params: dict[str, str]  # query string and form body merged; the body wins on a clash


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def json_answer(payload: Mapping[str, Any], status: int = 200) -> Answer:
    return Answer(status, json.dumps(payload).encode(), JSON_TYPE, {"Cache-Control": "no-store"})


def page(heading: str, body_html: str, status: int = 200) -> Answer:
    """A small self-contained page: no external assets, readable on a phone and by a screen reader."""
    document = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(TITLE)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 36rem; margin: 2rem auto; padding: 0 1rem;
  line-height: 1.5; color: #1a1a1a; background: #fff; }}
button, select {{ font: inherit; padding: .5rem 1rem; margin: .25rem .5rem .25rem 0; }}
button:focus-visible, select:focus-visible {{ outline: 3px solid #0b5fff; outline-offset: 2px; }}
code {{ overflow-wrap: anywhere; }}
</style>
</head>
<body>
<main>
<p>{html.escape(TITLE)}</p>
<h1>{html.escape(heading)}</h1>
{body_html}
</main>
</body>
</html>
"""
    return Answer(status, document.encode(), HTML_TYPE, {"Cache-Control": "no-store"})


def with_query(url: str, params: Sequence[tuple[str, str]]) -> str:
    """Append parameters to a redirect URI, keeping any query it already has (joined with &)."""
    parts = urlsplit(url)
    extra = urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


class DataCentreServer(ThreadingHTTPServer):
    """One data centre's accounts server; every one of them serves the same ZohoStandIn world."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], standin: ZohoStandIn, data_centre: str) -> None:
        self.standin = standin
        self.data_centre = data_centre
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay silent about clients that went away; never print a traceback that might carry a secret."""
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            print(f"zoho stand-in: internal error {type(error).__name__}", file=sys.stderr)


class _Handler(BaseHTTPRequestHandler):
    """Parses the request, records it, and lets the stand-in decide the answer."""

    protocol_version = "HTTP/1.1"
    server_version = "ZohoStandIn"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: request lines carry grant codes and tokens."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _serve(self) -> None:
        server = self.server
        assert isinstance(server, DataCentreServer)
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(json_answer({"error": "request_too_large"}, 413))
            return
        body = self.rfile.read(length) if length > 0 else b""
        if server.standin.api.serves(parts.path):  # the API, where api_domain points (zoho_standin_api)
            api = server.standin.api.handle(
                server.data_centre, self.command, parts.path, params, self.headers, body
            )
            self._send(Answer(api.status, api.body(), JSON_TYPE, api.headers))
            return
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if body and content_type in ("", "application/x-www-form-urlencoded"):
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        answer = server.standin._handle(
            server.data_centre,
            self.command,
            parts.path or "/",
            params,
            self.headers.get("Authorization") or "",
        )
        if answer is not None:
            self._send(answer)

    def _send(self, answer: Answer) -> None:
        self.close_connection = True  # one request per connection: stop() then really stops serving
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.send_header("Connection", "close")
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)
        except (ConnectionError, TimeoutError):
            pass  # the client gave up (e.g. its timeout during a "timeout" fault)


def unavailable() -> Answer:
    answer = page("Service Unavailable", "<p>Please try again later.</p>", 503)
    answer.headers["Retry-After"] = "1"
    return answer


def bad_request(problem: str) -> Answer:
    return page("Invalid request", f"<p>{html.escape(problem)}</p>", 400)


def redirect(location: str) -> Answer:
    return Answer(302, b"", HTML_TYPE, {"Location": location, "Cache-Control": "no-store"})


def consent_problem(params: Mapping[str, str]) -> str | None:
    """What is wrong with a consent request's parameters, in words, or None."""
    for name in ("client_id", "redirect_uri", "scope"):
        if not params.get(name):
            return f"The parameter {name} is missing."
    if urlsplit(params["redirect_uri"]).scheme not in ("http", "https"):
        return "The parameter redirect_uri must be an http or https URL."
    return None


def consent_page(
    params: Mapping[str, str], data_centre: str, data_centres: Sequence[str], accounts_html: str
) -> Answer:
    """Zoho's consent page: the permissions asked for, the account's data centre and who signs in."""
    scopes = "".join(
        f"<li><code>{html.escape(scope)}</code></li>" for scope in params["scope"].split(",") if scope.strip()
    )
    options = "".join(
        f'<option value="{html.escape(name)}"{" selected" if name == data_centre else ""}>'
        f"{html.escape(name.upper())}</option>"
        for name in data_centres
    )
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(params.get(name, ""))}">'
        for name in ("client_id", "redirect_uri", "scope", "state", "access_type")
    )
    body = f"""<p>The application <code>{html.escape(params["client_id"])}</code> asks to access your
Zoho account with these permissions:</p>
<ul>{scopes}</ul>
<form method="post" action="/oauth/v2/auth/decision">
{hidden}
<p><label for="data_centre">Your account's data centre</label><br>
<select id="data_centre" name="data_centre">{options}</select></p>
<fieldset><legend>Sign in as</legend>{accounts_html}</fieldset>
<p><button type="submit" name="decision" value="accept">Accept</button>
<button type="submit" name="decision" value="deny">Deny</button></p>
</form>"""
    return page("Allow access to your Zoho account?", body)

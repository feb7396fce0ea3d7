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
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response as HttpResponse

from zoho_broker import pages

if TYPE_CHECKING:
    from broker_local.zoho_standin import ZohoStandIn

TITLE = "Zoho Accounts (stand-in)"
JSON_TYPE = "application/json;charset=UTF-8"  # exactly what Zoho sends
HTML_TYPE = "text/html; charset=utf-8"
MAX_BODY_BYTES = 1 << 20
_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")  # what it serves; http.server answered others 501


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


_CSS = """body { font-family: system-ui, sans-serif; max-width: 36rem; margin: 2rem auto; padding: 0 1rem;
  line-height: 1.5; color: #1a1a1a; background: #fff; }
button, select { font: inherit; padding: .5rem 1rem; margin: .25rem .5rem .25rem 0; }
button:focus-visible, select:focus-visible { outline: 3px solid #0b5fff; outline-offset: 2px; }
code { overflow-wrap: anywhere; }"""


def page(heading: str, body_html: str, status: int = 200) -> Answer:
    """A small self-contained page: no external assets, readable on a phone and by a screen reader."""
    main = f"<main><p>{html.escape(TITLE)}</p><h1>{html.escape(heading)}</h1>{body_html}</main>"
    document = pages.document(title=TITLE, body_html=main, css=_CSS)
    return Answer(status, document.encode(), HTML_TYPE, {"Cache-Control": "no-store"})


def with_query(url: str, params: Sequence[tuple[str, str]]) -> str:
    """Append parameters to a redirect URI, keeping any query it already has (joined with &)."""
    parts = urlsplit(url)
    extra = urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


class _SilentRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler without its log: request lines carry grant codes and tokens."""

    def log(self, type: str, message: str, *args: Any) -> None:
        return None


def data_centre_server(host: str, port: int, standin: ZohoStandIn, data_centre: str) -> BaseWSGIServer:
    """One data centre's accounts server; every one of them serves the same ZohoStandIn world. Werkzeug
    closes each connection after its answer, so stop() really stops serving."""

    @Request.application
    def serve(request: Request) -> HttpResponse:
        try:
            answer = _answer(standin, data_centre, request)
        except Exception as error:  # never a traceback: it might carry a secret
            print(f"zoho stand-in: internal error {type(error).__name__}", file=sys.stderr)
            answer = None
        if answer is None:
            raise ConnectionAbortedError  # hang up without answering; Werkzeug drops it silently
        return HttpResponse(
            answer.body, answer.status, {"Content-Type": answer.content_type, **answer.headers}
        )

    return make_server(host, port, serve, threaded=True, request_handler=_SilentRequestHandler)


def _answer(standin: ZohoStandIn, data_centre: str, request: Request) -> Answer | None:
    """Parse and record the request, and let the stand-in decide the answer (None: hang up)."""
    if request.method not in _METHODS:
        return json_answer({"error": "unsupported_method"}, 501)
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return json_answer({"error": "request_too_large"}, 413)
    path = urlsplit(request.environ.get("RAW_URI") or request.path).path or "/"  # as sent, not decoded
    params = dict(request.args.items(multi=True))  # the last of a repeated parameter wins
    body = request.get_data()
    if standin.api.serves(path):  # the API, where api_domain points (zoho_standin_api)
        api = standin.api.handle(data_centre, request.method, path, params, request.headers, body)
        return Answer(api.status, api.body(), JSON_TYPE, api.headers)
    if body and request.mimetype in ("", "application/x-www-form-urlencoded"):
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return standin._handle(
        data_centre, request.method, path, params, request.headers.get("Authorization") or ""
    )


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

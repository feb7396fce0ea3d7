"""A local stand-in for Zoho's accounts servers that speaks real HTTP.

The broker's connect flow, token exchange and refresher are exercised against this instead of Zoho, so
it mirrors what is known of Zoho's OAuth: one accounts server per data centre sharing one world, grant
codes and tokens that only work at the data centre that issued them, errors as HTTP 200 with an `error`
field, at most 30 live access tokens per refresh token, at most 4 grant codes per minute per client. Faults (HTTP 500/503, hangs, rate limiting) can be injected so failure paths are
testable without Zoho. Nothing is printed: codes, secrets and tokens must never reach a log.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import secrets
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from broker_local.zoho_standin_api import (
    ACCOUNTS,
    DEFAULT_CONCURRENCY_LIMIT,
    Account,
    StandInApi,
    account_choices,
)

__all__ = ["FAULTS", "RecordedRequest", "ZohoStandIn", "api_domain_for", "main"]

FAULTS = frozenset(
    {"server_error", "unavailable", "timeout", "invalid_code", "rate_limited", "no_api_domain"}
)
"""What inject_fault accepts: the ways Zoho's token endpoint has been seen to fail."""

ACCESS_TOKEN_SECONDS = 3600
MAX_ACCESS_TOKENS_PER_REFRESH_TOKEN = 30
CODES_PER_MINUTE = 4
CODE_BLOCK_SECONDS = 600  # Zoho blocks the user for 10 minutes after too many grant codes.
TIMEOUT_FAULT_SECONDS = 30.0
SELF_CLIENT_REDIRECT_URI = ""  # a Self Client's grant code is bound to no redirect URI
RATE_LIMITED_DESCRIPTION = "You have made too many requests continuously. Please try again after some time."
TITLE = "Zoho Accounts (stand-in)"
JSON_TYPE = "application/json;charset=UTF-8"  # exactly what Zoho sends
HTML_TYPE = "text/html; charset=utf-8"
MAX_BODY_BYTES = 1 << 20

_API_DOMAINS = MappingProxyType(
    {
        "us": "https://www.zohoapis.com",
        "eu": "https://www.zohoapis.eu",
        "in": "https://www.zohoapis.in",
        "au": "https://www.zohoapis.com.au",
        "jp": "https://www.zohoapis.jp",
        "ca": "https://www.zohoapis.ca",
        "sa": "https://www.zohoapis.sa",
        "uk": "https://www.zohoapis.uk",
    }
)
_DEFAULT_DATA_CENTRES: Mapping[str, int] = MappingProxyType({"us": 0, "eu": 0})


def api_domain_for(data_centre: str) -> str:
    """The API base Zoho reports for a data centre, so tokens point consumers at the right region."""
    return _API_DOMAINS.get(data_centre, f"https://www.zohoapis.{data_centre}")


def _token() -> str:
    """A token shaped like Zoho's ("1000.<32 hex>.<32 hex>"), so format checks see the real shape."""
    return f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received, so tests can assert on what the broker sent and where."""

    data_centre: str
    method: str
    path: str
    params: dict[str, str]  # query string and form body merged; the body wins on a clash


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scope: str
    access_type: str
    data_centre: str
    expires_at: float
    organization_id: str = ""  # the organization of the account that consented


@dataclass
class _RefreshToken:
    client_id: str
    scope: str
    data_centre: str
    access_tokens: deque[str] = field(default_factory=deque)
    organization_id: str = ""


@dataclass
class _AccessToken:
    client_id: str
    scope: str
    data_centre: str
    refresh_token: str | None
    expires_at: float
    organization_id: str = ""


@dataclass
class _Fault:
    kind: str
    remaining: int
    data_centre: str | None


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def _json(payload: Mapping[str, Any], status: int = 200) -> _Answer:
    return _Answer(status, json.dumps(payload).encode(), JSON_TYPE, {"Cache-Control": "no-store"})


def _page(heading: str, body_html: str, status: int = 200) -> _Answer:
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
    return _Answer(status, document.encode(), HTML_TYPE, {"Cache-Control": "no-store"})


def _with_query(url: str, params: Sequence[tuple[str, str]]) -> str:
    """Append parameters to a redirect URI, keeping any query it already has (joined with &)."""
    parts = urlsplit(url)
    extra = urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


_Route = Callable[[str, dict[str, str]], _Answer | None]


class _DataCentreServer(ThreadingHTTPServer):
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
        assert isinstance(server, _DataCentreServer)
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(_json({"error": "request_too_large"}, 413))
            return
        body = self.rfile.read(length) if length > 0 else b""
        if server.standin.api.serves(parts.path):  # the API, where api_domain points (zoho_standin_api)
            api = server.standin.api.handle(
                server.data_centre, self.command, parts.path, params, self.headers, body
            )
            self._send(_Answer(api.status, api.body(), JSON_TYPE, api.headers))
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

    def _send(self, answer: _Answer) -> None:
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


def _unavailable() -> _Answer:
    answer = _page("Service Unavailable", "<p>Please try again later.</p>", 503)
    answer.headers["Retry-After"] = "1"
    return answer


# Faults answered at once, without touching the world (codes and tokens stay as they were).
_FAILURES: dict[str, Callable[[], _Answer]] = {
    "server_error": lambda: _page("Internal Server Error", "<p>Something went wrong.</p>", 500),
    "unavailable": _unavailable,
    "invalid_code": lambda: _json({"error": "invalid_code"}),
    "rate_limited": lambda: _json({"error": "access_denied", "error_description": RATE_LIMITED_DESCRIPTION}),
}


class ZohoStandIn:
    """Zoho's accounts servers for a set of data centres, in one process, sharing one in-memory world."""

    def __init__(
        self,
        data_centres: Mapping[str, int] = _DEFAULT_DATA_CENTRES,
        *,
        host: str = "127.0.0.1",
        latency_seconds: float = 0.0,
        code_ttl_seconds: int = 120,
        accounts: tuple[Account, ...] = ACCOUNTS,
        api_concurrency_limit: int = DEFAULT_CONCURRENCY_LIMIT,
        zoho_api_domains: bool = False,
    ) -> None:
        if not data_centres:
            raise ValueError("at least one data centre is needed")
        self._ports = dict(data_centres)
        self._host = host
        self._latency = float(latency_seconds)
        self._code_ttl = code_ttl_seconds
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._servers: dict[str, _DataCentreServer] = {}
        self._threads: list[threading.Thread] = []
        self._base_urls: dict[str, str] = {}
        # The world, guarded by self._lock.
        self._clients: dict[str, str] = {}
        self._codes: dict[str, _Code] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._access_tokens: dict[str, _AccessToken] = {}
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._codes_minted: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        # Token answers name the stand-in itself as api_domain, so API calls reach its API; True names
        # Zoho's real API domains instead (for checks of what Zoho answers).
        self._zoho_api_domains = zoho_api_domains
        self.api = StandInApi(
            token_organization=self._token_organization,
            stopping=self._stopping,
            accounts=accounts,
            concurrency_limit=api_concurrency_limit,
        )

    # ---------------------------------------------------------------------------------------------
    # Lifecycle

    def start(self) -> Self:
        """Bind every data centre's server (port 0 picks a free one) and serve in daemon threads."""
        if self._servers:
            return self
        self._stopping.clear()
        try:
            for data_centre, port in self._ports.items():
                server = _DataCentreServer((self._host, port), self, data_centre)
                self._servers[data_centre] = server
                self._base_urls[data_centre] = f"http://{self._host}:{server.server_address[1]}"
        except BaseException:
            self._close_servers()
            raise
        for data_centre, server in self._servers.items():
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"zoho-standin-{data_centre}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving; wakes handlers sleeping on latency or a "timeout" fault so this is prompt."""
        self._stopping.set()
        for server in self._servers.values():
            server.shutdown()
        self._close_servers()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def _close_servers(self) -> None:
        for server in self._servers.values():
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------------
    # Test controls

    @property
    def accounts_servers(self) -> dict[str, str]:
        """Base URL per data centre, e.g. {"us": "http://127.0.0.1:PORT"}; known once started."""
        if not self._base_urls:
            raise RuntimeError("the Zoho stand-in is not started")
        return dict(self._base_urls)

    def register_client(self, client_id: str, client_secret: str) -> None:
        """Require this secret for this client; unregistered clients get any non-empty secret accepted."""
        with self._lock:
            self._clients[client_id] = client_secret

    def inject_fault(self, fault: str, count: int = 1, data_centre: str | None = None) -> None:
        """Make the next `count` token requests (at `data_centre`, or anywhere) fail this way."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose one of {sorted(FAULTS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if data_centre is not None and data_centre not in self._ports:
            raise ValueError(f"unknown data centre {data_centre!r}")
        with self._lock:
            self._faults.append(_Fault(fault, count, data_centre))

    def clear_faults(self) -> None:
        """Forget faults not yet used (a request already hanging on "timeout" keeps hanging)."""
        with self._lock:
            self._faults.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, all data centres, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def token_call_count(self) -> int:
        """Requests to /oauth/v2/token (revocations excluded), faulted ones included."""
        with self._lock:
            return sum(1 for request in self._requests if request.path == "/oauth/v2/token")

    def issue_code(
        self, *, client_id: str, redirect_uri: str, scope: str, data_centre: str, account: str | None = None
    ) -> str:
        """Mint an offline grant code directly, for tests that skip the consent page (no rate limit)."""
        if data_centre not in self._ports:
            raise ValueError(f"unknown data centre {data_centre!r}")
        organization = self.api.account(account).organization.id
        with self._lock:
            return self._mint_code(client_id, redirect_uri, scope, "offline", data_centre, organization)

    def issue_self_client_code(
        self, *, client_id: str, scope: str, data_centre: str, account: str | None = None
    ) -> str:
        """What the API Console's Self Client does for the account owner: a one-use grant code for their own
        account at their data centre, with no redirect URI (its exchange sends none)."""
        if data_centre not in self._ports:
            raise ValueError(f"unknown data centre {data_centre!r}")
        organization = self.api.account(account).organization.id
        with self._lock:
            return self._mint_code(
                client_id, SELF_CLIENT_REDIRECT_URI, scope, "offline", data_centre, organization
            )

    def expire_access_tokens(self) -> None:
        """Every access token reaches its hour: API calls with them get INVALID_OAUTHTOKEN."""
        with self._lock:
            for record in self._access_tokens.values():
                record.expires_at = 0.0

    def live_refresh_tokens(self, client_id: str) -> set[str]:
        """The client's refresh tokens Zoho would still honour (for checks that none is left behind)."""
        with self._lock:
            return {token for token, record in self._refresh_tokens.items() if record.client_id == client_id}

    def refresh_token_organization(self, refresh_token: str) -> str | None:
        """The organization a live refresh token reaches (None once revoked), for checks of a binding."""
        with self._lock:
            record = self._refresh_tokens.get(refresh_token)
            return record.organization_id if record is not None else None

    def revoke_all(self, data_centre: str | None = None) -> None:
        """The user removed the app's access: every refresh token (and its access tokens) dies."""
        with self._lock:
            for token, record in list(self._refresh_tokens.items()):
                if data_centre is None or record.data_centre == data_centre:
                    self._revoke(token)

    def set_latency(self, seconds: float) -> None:
        """Delay every token and revoke answer by this much, to exercise the broker's timeouts."""
        with self._lock:
            self._latency = float(seconds)

    # ---------------------------------------------------------------------------------------------
    # The world (callers hold self._lock)

    def _mint_code(
        self, client_id: str, redirect_uri: str, scope: str, access_type: str, dc: str, organization: str
    ) -> str:
        code = _token()
        self._codes[code] = _Code(
            client_id, redirect_uri, scope, access_type, dc, time.monotonic() + self._code_ttl, organization
        )
        return code

    def _mint_access_token(
        self, client_id: str, scope: str, dc: str, refresh_token: str | None, organization: str
    ) -> str:
        token = _token()
        self._access_tokens[token] = _AccessToken(
            client_id, scope, dc, refresh_token, time.monotonic() + ACCESS_TOKEN_SECONDS, organization
        )
        if refresh_token is not None:
            issued = self._refresh_tokens[refresh_token].access_tokens
            issued.append(token)
            while len(issued) > MAX_ACCESS_TOKENS_PER_REFRESH_TOKEN:
                self._access_tokens.pop(issued.popleft(), None)  # Zoho deletes the oldest, in use or not
        return token

    def _revoke(self, refresh_token: str) -> None:
        record = self._refresh_tokens.pop(refresh_token, None)
        if record is not None:
            for access_token in record.access_tokens:
                self._access_tokens.pop(access_token, None)

    def _client_error(self, client_id: str, client_secret: str, bound_client_id: str) -> str | None:
        """invalid_client when the code or token belongs to another client; then the secret check."""
        if client_id != bound_client_id:
            return "invalid_client"
        registered = self._clients.get(client_id)
        if registered is not None and not secrets.compare_digest(registered.encode(), client_secret.encode()):
            return "invalid_client_secret"
        return None

    def _take_fault(self, dc: str) -> str | None:
        for fault in self._faults:
            if fault.data_centre in (None, dc):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault.kind
        return None

    def _code_allowance(self, client_id: str) -> bool:
        """Count a grant code against Zoho's 4-per-minute limit; False once the user is blocked."""
        now = time.monotonic()
        if self._blocked_until.get(client_id, 0.0) > now:
            return False
        minted = self._codes_minted.setdefault(client_id, deque())
        while minted and minted[0] <= now - 60:
            minted.popleft()
        if len(minted) >= CODES_PER_MINUTE:
            self._blocked_until[client_id] = now + CODE_BLOCK_SECONDS
            return False
        minted.append(now)
        return True

    # ---------------------------------------------------------------------------------------------
    # HTTP

    def _handle(
        self, dc: str, method: str, path: str, params: dict[str, str], authorization: str
    ) -> _Answer | None:
        """The answer to one request, or None to hang up without answering (stopping)."""
        with self._lock:
            self._requests.append(RecordedRequest(dc, method, path, dict(params)))
        routes: dict[str, tuple[str, _Route]] = {
            "/oauth/v2/auth": ("GET", self._authorize),
            "/oauth/v2/auth/decision": ("POST", self._decide),
            "/oauth/v2/token": ("POST", self._token_endpoint),
            "/oauth/v2/token/revoke": ("POST", self._revoke_endpoint),
            "/oauth/serverinfo": ("GET", self._serverinfo),
            "/standin/whoami": ("GET", lambda dc, params: self._whoami(dc, authorization)),
            "/standin/self-client": ("POST", self._self_client),
        }
        route = routes.get(path)
        if route is None:
            return _json({"error": "not_found", "path": path}, 404)
        allowed, handler = route
        if method != allowed:
            answer = _json({"error": "method_not_allowed", "allowed": allowed}, 405)
            answer.headers["Allow"] = allowed
            return answer
        return handler(dc, params)

    def _wait(self, seconds: float) -> bool:
        """Sleep unless stop() is called; True when the stand-in is stopping."""
        if seconds > 0:
            return self._stopping.wait(seconds)
        return self._stopping.is_set()

    def _authorize(self, dc: str, params: dict[str, str]) -> _Answer:
        for name in ("client_id", "redirect_uri", "scope"):
            if not params.get(name):
                return _bad_request(f"The parameter {name} is missing.")
        if params.get("response_type") != "code":
            return _bad_request("The parameter response_type must be code.")
        if urlsplit(params["redirect_uri"]).scheme not in ("http", "https"):
            return _bad_request("The parameter redirect_uri must be an http or https URL.")
        scopes = "".join(
            f"<li><code>{html.escape(scope)}</code></li>"
            for scope in params["scope"].split(",")
            if scope.strip()
        )
        options = "".join(
            f'<option value="{html.escape(name)}"{" selected" if name == dc else ""}>'
            f"{html.escape(name.upper())}</option>"
            for name in self._ports
        )
        accounts = account_choices(self.api.accounts)
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
<fieldset><legend>Sign in as</legend>{accounts}</fieldset>
<p><button type="submit" name="decision" value="accept">Accept</button>
<button type="submit" name="decision" value="deny">Deny</button></p>
</form>"""
        return _page("Allow access to your Zoho account?", body)

    def _decide(self, dc: str, params: dict[str, str]) -> _Answer:
        for name in ("client_id", "redirect_uri", "scope"):
            if not params.get(name):
                return _bad_request(f"The parameter {name} is missing.")
        redirect_uri = params["redirect_uri"]
        if urlsplit(redirect_uri).scheme not in ("http", "https"):
            return _bad_request("The parameter redirect_uri must be an http or https URL.")
        chosen = params.get("data_centre") or dc
        if chosen not in self._ports:
            return _bad_request(f"Unknown data centre {chosen}.")
        try:
            account = self.api.account(params.get("account") or None)
        except ValueError:
            return _bad_request("Unknown account.")
        state = [("state", params["state"])] if params.get("state") else []
        decision = params.get("decision")
        if decision == "deny":
            return _redirect(_with_query(redirect_uri, [("error", "access_denied"), *state]))
        if decision != "accept":
            return _bad_request("The decision must be accept or deny.")
        with self._lock:
            if not self._code_allowance(params["client_id"]):
                return _page(
                    "Access Denied",
                    "<p>You have made too many requests for authorization codes. "
                    "Please try again after some time.</p>",
                )
            code = self._mint_code(
                params["client_id"],
                redirect_uri,
                params["scope"],
                params.get("access_type") or "online",
                chosen,
                account.organization.id,
            )
        return _redirect(
            _with_query(
                redirect_uri,
                [
                    *state,
                    ("code", code),
                    ("location", chosen),
                    ("accounts-server", self._base_urls[chosen]),
                ],
            )
        )

    def _delay_and_fault(self, dc: str) -> tuple[bool, _Answer | None, str | None]:
        """Latency, then any injected fault: (True, answer) ends the request (None drops it).

        The token and revoke endpoints share this: revoke lives beside the token endpoint and fails with it.
        """
        with self._lock:
            latency = self._latency
        if self._wait(latency):
            return True, None, None
        with self._lock:
            fault = self._take_fault(dc)
        if fault in _FAILURES:
            return True, _FAILURES[fault](), fault
        # "timeout": hang, then (if the client still listens) answer for real, as a slow Zoho would.
        if fault == "timeout" and self._wait(TIMEOUT_FAULT_SECONDS):
            return True, None, fault
        return False, None, fault

    def _token_endpoint(self, dc: str, params: dict[str, str]) -> _Answer | None:
        done, failure, fault = self._delay_and_fault(dc)
        if done:
            return failure
        grant_type = params.get("grant_type")
        with self._lock:
            if grant_type == "authorization_code":
                answer = self._exchange_code(dc, params)
            elif grant_type == "refresh_token":
                answer = self._refresh(dc, params)
            else:
                answer = {"error": "unsupported_grant_type"}
        if fault == "no_api_domain":  # a real answer that leaves api_domain out, as Zoho sometimes does
            answer.pop("api_domain", None)
        return _json(answer)

    def _exchange_code(self, dc: str, params: dict[str, str]) -> dict[str, Any]:
        if not all(params.get(name) for name in ("code", "client_id", "client_secret")):
            return {"error": "invalid_request"}
        code = self._codes.get(params["code"])
        if (
            code is not None
            and code.redirect_uri != SELF_CLIENT_REDIRECT_URI
            and not params.get("redirect_uri")
        ):
            return {"error": "invalid_request"}  # a consent's code is exchanged with its redirect URI
        if code is None or code.data_centre != dc:
            return {"error": "invalid_code"}  # unknown, used, or minted at another data centre
        if code.expires_at <= time.monotonic():
            del self._codes[params["code"]]
            return {"error": "invalid_code"}
        # A client or redirect mismatch leaves the code usable: only a successful exchange spends it.
        error = self._client_error(params["client_id"], params["client_secret"], code.client_id)
        if error is None and params.get("redirect_uri", "") != code.redirect_uri:
            error = "invalid_redirect_uri"
        if error is not None:
            return {"error": error}
        del self._codes[params["code"]]
        answer: dict[str, Any] = {}
        refresh_token = None
        if code.access_type == "offline":  # only offline access yields a refresh token
            refresh_token = _token()
            self._refresh_tokens[refresh_token] = _RefreshToken(
                code.client_id, code.scope, dc, organization_id=code.organization_id
            )
        answer["access_token"] = self._mint_access_token(
            code.client_id, code.scope, dc, refresh_token, code.organization_id
        )
        if refresh_token is not None:
            answer["refresh_token"] = refresh_token
        answer.update(api_domain=self._api_domain(dc), token_type="Bearer", expires_in=ACCESS_TOKEN_SECONDS)
        return answer

    def _refresh(self, dc: str, params: dict[str, str]) -> dict[str, Any]:
        if not all(params.get(name) for name in ("refresh_token", "client_id", "client_secret")):
            return {"error": "invalid_request"}
        record = self._refresh_tokens.get(params["refresh_token"])
        if record is None or record.data_centre != dc:
            return {"error": "invalid_code"}  # what Zoho says for a revoked or foreign refresh token
        error = self._client_error(params["client_id"], params["client_secret"], record.client_id)
        if error is not None:
            return {"error": error}
        return {
            "access_token": self._mint_access_token(
                record.client_id, record.scope, dc, params["refresh_token"], record.organization_id
            ),
            "api_domain": self._api_domain(dc),
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
        }

    def _revoke_endpoint(self, dc: str, params: dict[str, str]) -> _Answer | None:
        done, failure, _ = self._delay_and_fault(dc)
        if done:
            return failure
        with self._lock:
            record = self._refresh_tokens.get(params.get("token", ""))
            if record is not None and record.data_centre == dc:
                self._revoke(params["token"])
        # Unknown (or already revoked) tokens get the same success: Zoho is lenient here, and a broker
        # that revokes on re-authorization must not fail because the user already removed the app.
        return _json({"status": "success"})

    def _self_client(self, dc: str, params: dict[str, str]) -> _Answer:
        """The API Console's Self Client, Generate Code: a page showing a grant code for this data centre
        (POST client_id and scope), for trying `broker grant-code` under `make dev`."""
        for name in ("client_id", "scope"):
            if not params.get(name):
                return _bad_request(f"The parameter {name} is missing.")
        with self._lock:
            code = self._mint_code(
                params["client_id"],
                SELF_CLIENT_REDIRECT_URI,
                params["scope"],
                "offline",
                dc,
                self.api.accounts[0].organization.id,
            )
        minutes = max(1, self._code_ttl // 60)
        return _page(
            "Self Client grant code",
            f"<p>Valid once, at the {html.escape(dc.upper())} data centre, for {minutes} min:</p>"
            f'<p><code id="grant-code">{html.escape(code)}</code></p>',
        )

    def _serverinfo(self, dc: str, params: dict[str, str]) -> _Answer:
        return _json({"result": "success", "locations": self.accounts_servers})

    def _api_domain(self, dc: str) -> str:
        return api_domain_for(dc) if self._zoho_api_domains else self._base_urls[dc]

    def _token_organization(self, token: str, dc: str) -> str | None:
        """The organization a live access token of this data centre reaches; None for any other token."""
        with self._lock:
            record = self._access_tokens.get(token)
            if record is None or record.data_centre != dc or record.expires_at <= time.monotonic():
                return None
            return record.organization_id

    def _whoami(self, dc: str, authorization: str) -> _Answer:
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            record = self._access_tokens.get(token.strip()) if scheme == "Zoho-oauthtoken" else None
            if record is None or record.data_centre != dc or record.expires_at <= time.monotonic():
                return _json({"code": "INVALID_TOKEN"}, 401)
            return _json({"data_centre": dc, "client_id": record.client_id})


def _bad_request(problem: str) -> _Answer:
    return _page("Invalid request", f"<p>{html.escape(problem)}</p>", 400)


def _redirect(location: str) -> _Answer:
    return _Answer(302, b"", HTML_TYPE, {"Location": location, "Cache-Control": "no-store"})


def main(argv: Sequence[str] | None = None) -> None:
    """Run the stand-in in the foreground until Ctrl-C, e.g. to point `make dev` or curl at it."""
    parser = argparse.ArgumentParser(prog="python -m broker_local.zoho_standin", description=__doc__)
    parser.add_argument(
        "--dc",
        action="append",
        metavar="NAME=PORT",
        help="a data centre and its port (0 = any free port); repeatable; default us=9001 eu=9002",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before every token answer")
    parser.add_argument("--code-ttl", type=int, default=120, help="grant code lifetime in seconds")
    options = parser.parse_args(argv)
    data_centres: dict[str, int] = {}
    for item in options.dc or ["us=9001", "eu=9002"]:
        name, separator, port = item.partition("=")
        if not separator or not name or not port.isdigit():
            parser.error(f"--dc takes NAME=PORT, not {item!r}")
        data_centres[name] = int(port)
    standin = ZohoStandIn(
        data_centres,
        host=options.host,
        latency_seconds=options.latency_ms / 1000,
        code_ttl_seconds=options.code_ttl,
    )
    with standin:
        for name, url in standin.accounts_servers.items():
            print(f"{name}: {url}")
        print(f"BROKER_ZOHO_ACCOUNTS_SERVERS='{json.dumps(standin.accounts_servers)}'")
        print("Press Ctrl-C to stop.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()

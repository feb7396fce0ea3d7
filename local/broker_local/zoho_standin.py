"""A local stand-in for Zoho's accounts servers that speaks real HTTP.

The broker's connect flow, token exchange and refresher are exercised against this instead of Zoho, so
it mirrors what is known of Zoho's OAuth: one accounts server per data centre sharing one world, grant
codes and tokens that only work at the data centre that issued them, errors as HTTP 200 with an `error`
field, at most 30 live access tokens per refresh token, at most 4 grant codes per minute per client.
Faults (HTTP 500/503, hangs, rate limiting) can be injected so failure paths are testable without Zoho.
Nothing is printed: codes, secrets and tokens must never reach a log. HTTP: zoho_standin_http; the
records of its world: zoho_standin_world; its API: zoho_standin_api."""

from __future__ import annotations

import html
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, Self

from werkzeug.serving import BaseWSGIServer

from broker_local import favicon
from broker_local.zoho_standin_api import (
    StandInApi,
    account_choices,
)
from broker_local.zoho_standin_http import (
    Answer,
    RecordedRequest,
    bad_request,
    consent_page,
    consent_problem,
    data_centre_server,
    json_answer,
    page,
    redirect,
    unavailable,
    with_query,
)
from broker_local.zoho_standin_world import (
    ACCESS_TOKEN_SECONDS,
    CODE_BLOCK_SECONDS,
    CODES_PER_MINUTE,
    FAULTS,
    MAX_ACCESS_TOKENS_PER_REFRESH_TOKEN,
    RATE_LIMITED_DESCRIPTION,
    SELF_CLIENT_REDIRECT_URI,
    TIMEOUT_FAULT_SECONDS,
    AccessToken,
    Code,
    Fault,
    RefreshToken,
    api_domain_for,
    new_token,
)

__all__ = ["FAULTS", "RecordedRequest", "ZohoStandIn", "api_domain_for"]

_DEFAULT_DATA_CENTRES: Mapping[str, int] = MappingProxyType({"us": 0, "eu": 0})


_Route = Callable[[str, dict[str, str]], Answer | None]

# Faults answered at once, without touching the world (codes and tokens stay as they were).
_FAILURES: dict[str, Callable[[], Answer]] = {
    "server_error": lambda: page("Internal Server Error", "<p>Something went wrong.</p>", 500),
    "unavailable": unavailable,
    "invalid_code": lambda: json_answer({"error": "invalid_code"}),
    # The API Console client was deleted (or its id mistyped): Zoho no longer knows it.
    "invalid_client": lambda: json_answer({"error": "invalid_client"}),
    "rate_limited": lambda: json_answer(
        {"error": "access_denied", "error_description": RATE_LIMITED_DESCRIPTION}
    ),
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
        learn_client_secrets: bool = False,
        zoho_api_domains: bool = False,
    ) -> None:
        if not data_centres:
            raise ValueError("at least one data centre is needed")
        self._ports = dict(data_centres)
        self._host = host
        self._latency = float(latency_seconds)
        self._code_ttl = code_ttl_seconds
        # The local runner's subscriptions come with any secret: the first one used at a data centre is
        # the client's from then on (an API Console client has one secret, or one per data centre).
        self._learn_secrets = learn_client_secrets
        self._learned: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._servers: dict[str, BaseWSGIServer] = {}
        self._threads: list[threading.Thread] = []
        self._base_urls: dict[str, str] = {}
        # The world, guarded by self._lock.
        self._clients: dict[str, str] = {}
        self._codes: dict[str, Code] = {}
        self._refresh_tokens: dict[str, RefreshToken] = {}
        self._access_tokens: dict[str, AccessToken] = {}
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._codes_minted: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        # Token answers name the stand-in itself as api_domain, so API calls reach its API; True names
        # Zoho's real API domains instead (for checks of what Zoho answers).
        self._zoho_api_domains = zoho_api_domains
        self.api = StandInApi(token_organization=self._token_organization, stopping=self._stopping)

    # Lifecycle

    def start(self) -> Self:
        """Bind every data centre's server (port 0 picks a free one) and serve in daemon threads."""
        if self._servers:
            return self
        self._stopping.clear()
        try:
            for data_centre, port in self._ports.items():
                server = data_centre_server(self._host, port, self, data_centre)
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

    # Test controls

    @property
    def accounts_servers(self) -> dict[str, str]:
        """Base URL per data centre, e.g. {"us": "http://127.0.0.1:PORT"}; known once started."""
        if not self._base_urls:
            raise RuntimeError("the Zoho stand-in is not started")
        return dict(self._base_urls)

    def register_client(self, client_id: str, client_secret: str) -> None:
        """Require this secret for this client at every data centre; unregistered clients get any non-empty
        secret accepted (or, when learning, the first one used at each data centre)."""
        with self._lock:
            self._clients[client_id] = client_secret

    def forget_client_secrets(self, client_id: str) -> None:
        """The client's secrets were changed in the API Console: the next one used at each data centre is
        learned again (only when learning)."""
        with self._lock:
            self._learned = {key: value for key, value in self._learned.items() if key[0] != client_id}

    def inject_fault(self, fault: str, count: int = 1, data_centre: str | None = None) -> None:
        """Make the next `count` token requests (at `data_centre`, or anywhere) fail this way."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose one of {sorted(FAULTS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if data_centre is not None and data_centre not in self._ports:
            raise ValueError(f"unknown data centre {data_centre!r}")
        with self._lock:
            self._faults.append(Fault(fault, count, data_centre))

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
        return self.issue_code(
            client_id=client_id,
            redirect_uri=SELF_CLIENT_REDIRECT_URI,
            scope=scope,
            data_centre=data_centre,
            account=account,
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

    def revoke_client(self, client_id: str) -> int:
        """The person removed this client's access in their Zoho account: its refresh tokens die (how many)."""
        with self._lock:
            tokens = [
                token for token, record in self._refresh_tokens.items() if record.client_id == client_id
            ]
            for token in tokens:
                self._revoke(token)
            return len(tokens)

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

    # The world (callers hold self._lock)

    def _mint_code(
        self, client_id: str, redirect_uri: str, scope: str, access_type: str, dc: str, organization: str
    ) -> str:
        code = new_token()
        self._codes[code] = Code(
            client_id, redirect_uri, scope, access_type, dc, time.monotonic() + self._code_ttl, organization
        )
        return code

    def _mint_access_token(
        self, client_id: str, scope: str, dc: str, refresh_token: str | None, organization: str
    ) -> str:
        token = new_token()
        self._access_tokens[token] = AccessToken(
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

    def _client_error(self, client_id: str, client_secret: str, bound_client_id: str, dc: str) -> str | None:
        """invalid_client when the code or token belongs to another client, or the secret is not its own."""
        if client_id != bound_client_id:
            return "invalid_client"
        known = self._clients.get(client_id) or self._learned.get((client_id, dc))
        if known is not None and not secrets.compare_digest(known.encode(), client_secret.encode()):
            return "invalid_client"
        return None

    def _learn(self, client_id: str, client_secret: str, dc: str) -> None:
        """After a successful exchange or refresh: the secret used is the client's (first use wins)."""
        if self._learn_secrets and client_id not in self._clients:
            self._learned.setdefault((client_id, dc), client_secret)

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

    # HTTP

    def _handle(
        self, dc: str, method: str, path: str, params: dict[str, str], authorization: str
    ) -> Answer | None:
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
            "/favicon.ico": ("GET", lambda dc, params: Answer(200, favicon.STANDIN, "image/png")),
        }
        route = routes.get(path)
        if route is None:
            return json_answer({"error": "not_found", "path": path}, 404)
        allowed, handler = route
        if method != allowed:
            answer = json_answer({"error": "method_not_allowed", "allowed": allowed}, 405)
            answer.headers["Allow"] = allowed
            return answer
        return handler(dc, params)

    def _wait(self, seconds: float) -> bool:
        """Sleep unless stop() is called; True when the stand-in is stopping."""
        if seconds > 0:
            return self._stopping.wait(seconds)
        return self._stopping.is_set()

    def _authorize(self, dc: str, params: dict[str, str]) -> Answer:
        problem = consent_problem(params)
        if problem is None and params.get("response_type") != "code":
            problem = "The parameter response_type must be code."
        if problem is not None:
            return bad_request(problem)
        return consent_page(params, dc, list(self._ports), account_choices(self.api.accounts))

    def _decide(self, dc: str, params: dict[str, str]) -> Answer:
        problem = consent_problem(params)
        if problem is not None:
            return bad_request(problem)
        redirect_uri = params["redirect_uri"]
        chosen = params.get("data_centre") or dc
        if chosen not in self._ports:
            return bad_request(f"Unknown data centre {chosen}.")
        try:
            account = self.api.account(params.get("account") or None)
        except ValueError:
            return bad_request("Unknown account.")
        state = [("state", params["state"])] if params.get("state") else []
        decision = params.get("decision")
        if decision == "deny":
            return redirect(with_query(redirect_uri, [("error", "access_denied"), *state]))
        if decision != "accept":
            return bad_request("The decision must be accept or deny.")
        with self._lock:
            if not self._code_allowance(params["client_id"]):
                return page(
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
        return redirect(
            with_query(
                redirect_uri,
                [
                    *state,
                    ("code", code),
                    ("location", chosen),
                    ("accounts-server", self._base_urls[chosen]),
                ],
            )
        )

    def _delay_and_fault(self, dc: str) -> tuple[bool, Answer | None, str | None]:
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

    def _token_endpoint(self, dc: str, params: dict[str, str]) -> Answer | None:
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
        return json_answer(answer)

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
        error = self._client_error(params["client_id"], params["client_secret"], code.client_id, dc)
        if error is None and params.get("redirect_uri", "") != code.redirect_uri:
            error = "invalid_redirect_uri"
        if error is not None:
            return {"error": error}
        del self._codes[params["code"]]
        self._learn(code.client_id, params["client_secret"], dc)
        answer: dict[str, Any] = {}
        refresh_token = None
        if code.access_type == "offline":  # only offline access yields a refresh token
            refresh_token = new_token()
            self._refresh_tokens[refresh_token] = RefreshToken(
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
        error = self._client_error(params["client_id"], params["client_secret"], record.client_id, dc)
        if error is not None:
            return {"error": error}
        self._learn(record.client_id, params["client_secret"], dc)
        return {
            "access_token": self._mint_access_token(
                record.client_id, record.scope, dc, params["refresh_token"], record.organization_id
            ),
            "api_domain": self._api_domain(dc),
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
        }

    def _revoke_endpoint(self, dc: str, params: dict[str, str]) -> Answer | None:
        done, failure, _ = self._delay_and_fault(dc)
        if done:
            return failure
        with self._lock:
            record = self._refresh_tokens.get(params.get("token", ""))
            if record is not None and record.data_centre == dc:
                self._revoke(params["token"])
        # Unknown (or already revoked) tokens get the same success: Zoho is lenient here, and a broker
        # that revokes on re-authorization must not fail because the user already removed the app.
        return json_answer({"status": "success"})

    def _self_client(self, dc: str, params: dict[str, str]) -> Answer:
        """The API Console's Self Client, Generate Code: a page showing a grant code for this data centre
        (POST client_id and scope), for trying `broker grant-code` under `make dev`."""
        for name in ("client_id", "scope"):
            if not params.get(name):
                return bad_request(f"The parameter {name} is missing.")
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
        return page(
            "Self Client grant code",
            f"<p>Valid once, at the {html.escape(dc.upper())} data centre, for {minutes} min:</p>"
            f'<p><code id="grant-code">{html.escape(code)}</code></p>',
        )

    def _serverinfo(self, dc: str, params: dict[str, str]) -> Answer:
        return json_answer({"result": "success", "locations": self.accounts_servers})

    def _api_domain(self, dc: str) -> str:
        return api_domain_for(dc) if self._zoho_api_domains else self._base_urls[dc]

    def _token_organization(self, token: str, dc: str) -> str | None:
        """The organization a live access token of this data centre reaches; None for any other token."""
        with self._lock:
            record = self._access_tokens.get(token)
            if record is None or record.data_centre != dc or record.expires_at <= time.monotonic():
                return None
            return record.organization_id

    def _whoami(self, dc: str, authorization: str) -> Answer:
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            record = self._access_tokens.get(token.strip()) if scheme == "Zoho-oauthtoken" else None
            if record is None or record.data_centre != dc or record.expires_at <= time.monotonic():
                return json_answer({"code": "INVALID_TOKEN"}, 401)
            return json_answer({"data_centre": dc, "client_id": record.client_id})


if __name__ == "__main__":
    from broker_local.zoho_standin_cli import main

    main()

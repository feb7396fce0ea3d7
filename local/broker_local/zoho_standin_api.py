"""The Zoho stand-in's API: what a connected subscription's calls meet, served where ``api_domain`` points.

Each stand-in account belongs to an organization (id, name). Zoho CRM's ``GET /crm/v8/org`` and a records
module with ``page``/``per_page``/``info.more_records`` paging and create, update and delete; Zoho
Commerce's organizations and a resource that needs the ``X-com-zoho-store-organizationid`` header; a
per-organization limit on concurrent calls (``TOO_MANY_REQUESTS``, HTTP 429); ``INVALID_OAUTHTOKEN``
(HTTP 401) for an expired, revoked or unknown access token or one presented at another data centre.
Error bodies are Zoho's: CRM's ``{"code", "details", "message", "status"}`` and Commerce's
``{"code": <number>, "message"}``. Nothing is printed: tokens must never reach a log.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACCOUNTS",
    "Account",
    "ApiRequest",
    "Organization",
    "StandInApi",
    "account_choices",
]

CRM_PREFIX = "/crm/v8"
COMMERCE_PREFIX = "/store/api/v1"
# The other built-ins, far enough for their verification calls: Bigin is CRM-shaped, Books and
# Inventory answer organizations as Commerce does, Desk answers its own shape.
CRM_LIKE_PREFIXES = (CRM_PREFIX, "/bigin/v2")
BOOKS_LIKE_PREFIXES = (COMMERCE_PREFIX, "/books/v3", "/inventory/v1")
DESK_PREFIX = "/api/v1"
COMMERCE_ORGANIZATION_HEADER = "x-com-zoho-store-organizationid"
CRM_MODULES = ("Leads", "Contacts", "Accounts", "Deals")
MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 200
DEFAULT_CONCURRENCY_LIMIT = 10  # Zoho CRM Standard edition: 10 concurrent calls per app per organization
_RECORD = re.compile(r"^/(?P<module>[A-Za-z_]+)(/(?P<id>[0-9]+))?$")
_COMMERCE_ORGANIZATION = re.compile(r"^/organizations/(?P<id>[^/]+)$")


@dataclass(frozen=True)
class Organization:
    id: str
    name: str


@dataclass(frozen=True)
class Account:
    """A person's Zoho account, signing in on the consent page; its organization is what a token reaches."""

    email: str
    organization: Organization


ACCOUNTS: tuple[Account, ...] = (
    Account("owner@acme.example", Organization("4000000001", "Acme Ltd")),
    Account("admin@globex.example", Organization("4000000002", "Globex Corporation")),
)


@dataclass(frozen=True)
class ApiRequest:
    """One API call as received (no Authorization header: tests assert on the rest)."""

    data_centre: str
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    organization_id: str | None


@dataclass
class ApiAnswer:
    status: int
    payload: Mapping[str, Any] | None  # None: no body (HTTP 204)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        return b"" if self.payload is None else json.dumps(self.payload).encode()


def crm_error(status: int, code: str, message: str, details: Mapping[str, Any] | None = None) -> ApiAnswer:
    return ApiAnswer(
        status, {"code": code, "details": dict(details or {}), "message": message, "status": "error"}
    )


def commerce_error(status: int, code: int, message: str) -> ApiAnswer:
    return ApiAnswer(status, {"code": code, "message": message})


INVALID_TOKEN = crm_error(401, "INVALID_OAUTHTOKEN", "invalid oauth token")
TOO_MANY_REQUESTS = crm_error(
    429,
    "TOO_MANY_REQUESTS",
    "The number of concurrent requests for this organization has exceeded the limit.",
)


class StandInApi:
    """The API half of the stand-in's world: organizations, their records and their calls in flight."""

    def __init__(
        self,
        *,
        token_organization: Callable[[str, str], str | None],
        stopping: threading.Event,
        accounts: tuple[Account, ...] = ACCOUNTS,
        concurrency_limit: int = DEFAULT_CONCURRENCY_LIMIT,
    ) -> None:
        self._token_organization = token_organization
        self._stopping = stopping
        self._lock = threading.Lock()
        self.accounts = accounts
        self._organizations = {account.organization.id: account.organization for account in accounts}
        self._concurrency_limit = concurrency_limit
        self._latency = 0.0
        self._in_flight: dict[str, int] = {}
        self._records: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._next_id = 5_000_000_000_000_000_000
        self._requests: list[ApiRequest] = []
        self._failures: list[int] = []
        self.peak_in_flight: dict[str, int] = {}

    # ---------------------------------------------------------------------------------------------
    # Test controls

    def account(self, email: str | None) -> Account:
        """The account with this email; the first one when none is named."""
        if email is None:
            return self.accounts[0]
        for account in self.accounts:
            if account.email == email:
                return account
        raise ValueError(f"unknown stand-in account {email!r}")

    def set_concurrency_limit(self, limit: int) -> None:
        with self._lock:
            self._concurrency_limit = limit

    def set_latency(self, seconds: float) -> None:
        """Hold every API answer this long, so calls overlap and the concurrency limit can be met."""
        with self._lock:
            self._latency = float(seconds)

    def inject_failure(self, status: int = 500, count: int = 1) -> None:
        """The next ``count`` API calls answer this HTTP status with an HTML page, as a failing Zoho does."""
        with self._lock:
            self._failures.extend([status] * count)

    def add_records(self, organization_id: str, module: str, count: int) -> list[str]:
        """Create records directly (no call counted), e.g. enough to page through."""
        with self._lock:
            return [self._create(organization_id, module, {"Last_Name": f"Record {n}"}) for n in range(count)]

    def records(self, organization_id: str, module: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                key: dict(value) for key, value in self._records.get((organization_id, module), {}).items()
            }

    @property
    def requests(self) -> list[ApiRequest]:
        with self._lock:
            return list(self._requests)

    # ---------------------------------------------------------------------------------------------
    # HTTP

    @staticmethod
    def serves(path: str) -> bool:
        return _prefix(path) is not None

    def handle(
        self, dc: str, method: str, path: str, params: dict[str, str], headers: Any, body: bytes
    ) -> ApiAnswer:
        """One API call: the token names the organization, then the per-organization limit, then the route."""
        lowered = {str(name).lower(): str(value) for name, value in headers.items()}
        scheme, _, token = lowered.get("authorization", "").partition(" ")
        organization_id = self._token_organization(token.strip(), dc) if scheme == "Zoho-oauthtoken" else None
        with self._lock:
            self._requests.append(
                ApiRequest(
                    dc,
                    method,
                    path,
                    dict(params),
                    {k: v for k, v in lowered.items() if k != "authorization"},
                    organization_id,
                )
            )
            if self._failures:
                return ApiAnswer(self._failures.pop(0), None)
            if organization_id is None:
                return INVALID_TOKEN
            running = self._in_flight.get(organization_id, 0)
            if running >= self._concurrency_limit:
                return TOO_MANY_REQUESTS
            self._in_flight[organization_id] = running + 1
            self.peak_in_flight[organization_id] = max(
                self.peak_in_flight.get(organization_id, 0), running + 1
            )
            latency = self._latency
        try:
            if latency > 0:
                self._stopping.wait(latency)
            try:
                document: Any = json.loads(body) if body else None
            except ValueError:
                document = ...
            prefix = _prefix(path) or ""
            rest = path.removeprefix(prefix)
            with self._lock:
                if prefix in CRM_LIKE_PREFIXES:
                    return self._crm(organization_id, method, rest, params, document)
                if prefix == DESK_PREFIX:
                    return self._desk(organization_id, method, rest)
                return self._commerce(organization_id, method, rest, params, lowered)
        finally:
            with self._lock:
                self._in_flight[organization_id] -= 1

    # ---------------------------------------------------------------------------------------------
    # Zoho CRM (callers hold self._lock)

    def _crm(
        self, organization_id: str, method: str, path: str, params: dict[str, str], document: Any
    ) -> ApiAnswer:
        organization = self._organizations[organization_id]
        if path == "/org":
            if method != "GET":
                return crm_error(
                    405, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one"
                )
            return ApiAnswer(
                200,
                {"org": [{"id": organization.id, "company_name": organization.name, "country_code": "US"}]},
            )
        match = _RECORD.match(path)
        if match is None:
            return crm_error(
                404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"
            )
        module, record_id = match["module"], match["id"]
        if module not in CRM_MODULES:
            return crm_error(400, "INVALID_MODULE", "the module name given seems to be invalid", {})
        if method == "GET":
            return self._crm_read(organization_id, module, record_id, params)
        if document is ... or (method in ("POST", "PUT") and not _records_in(document)):
            return crm_error(400, "INVALID_DATA", "invalid data", {})
        if method == "POST" and record_id is None:
            created = [self._create(organization_id, module, record) for record in _records_in(document)]
            return ApiAnswer(201, {"data": [_crm_success(key, "record added") for key in created]})
        if method == "PUT" and record_id is not None:
            return self._crm_update(organization_id, module, record_id, _records_in(document)[0])
        if method == "DELETE":
            ids = [record_id] if record_id is not None else [i for i in params.get("ids", "").split(",") if i]
            return self._crm_delete(organization_id, module, ids)
        return crm_error(405, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one")

    def _crm_read(
        self, organization_id: str, module: str, record_id: str | None, params: dict[str, str]
    ) -> ApiAnswer:
        stored = self._records.get((organization_id, module), {})
        if record_id is not None:
            record = stored.get(record_id)
            return ApiAnswer(204, None) if record is None else ApiAnswer(200, {"data": [dict(record)]})
        try:
            page = int(params.get("page", "1"))
            per_page = int(params.get("per_page", str(DEFAULT_PER_PAGE)))
        except ValueError:
            return crm_error(400, "INVALID_DATA", "invalid data", {"param_name": "page"})
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            return crm_error(
                400, "INVALID_DATA", "invalid data", {"param_name": "per_page", "maximum_length": 200}
            )
        records = list(stored.values())
        chunk = records[(page - 1) * per_page : page * per_page]
        if not chunk:
            return ApiAnswer(204, None)  # Zoho CRM answers an empty page with No Content
        info = {
            "per_page": per_page,
            "count": len(chunk),
            "page": page,
            "more_records": page * per_page < len(records),
        }
        return ApiAnswer(200, {"data": [dict(r) for r in chunk], "info": info})

    def _crm_update(
        self, organization_id: str, module: str, record_id: str, changes: Mapping[str, Any]
    ) -> ApiAnswer:
        record = self._records.get((organization_id, module), {}).get(record_id)
        if record is None:
            return crm_error(400, "INVALID_DATA", "the id given seems to be invalid", {"id": record_id})
        record.update({k: v for k, v in changes.items() if k != "id"})
        return ApiAnswer(200, {"data": [_crm_success(record_id, "record updated")]})

    def _crm_delete(self, organization_id: str, module: str, ids: list[str]) -> ApiAnswer:
        if not ids:
            return crm_error(
                400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", {"param": "ids"}
            )
        stored = self._records.setdefault((organization_id, module), {})
        results = []
        for key in ids:
            if stored.pop(key, None) is None:
                results.append(
                    {
                        "code": "INVALID_DATA",
                        "details": {"id": key},
                        "message": "the id given seems to be invalid",
                        "status": "error",
                    }
                )
            else:
                results.append(_crm_success(key, "record deleted"))
        return ApiAnswer(200, {"data": results})

    def _create(self, organization_id: str, module: str, values: Mapping[str, Any]) -> str:
        self._next_id += 1
        key = str(self._next_id)
        self._records.setdefault((organization_id, module), {})[key] = {**values, "id": key}
        return key

    def _desk(self, organization_id: str, method: str, path: str) -> ApiAnswer:
        organization = self._organizations[organization_id]
        match = _COMMERCE_ORGANIZATION.match(path)
        if method != "GET" or match is None:
            return ApiAnswer(
                404, {"errorCode": "URL_NOT_FOUND", "message": "The URL you requested is not found."}
            )
        if match["id"] != organization.id:
            return ApiAnswer(
                403, {"errorCode": "FORBIDDEN", "message": "You are not authorized to access this resource."}
            )
        return ApiAnswer(200, {"id": organization.id, "companyName": organization.name})

    # ---------------------------------------------------------------------------------------------
    # Zoho Commerce, Books and Inventory (callers hold self._lock)

    def _commerce(
        self, organization_id: str, method: str, path: str, params: dict[str, str], headers: Mapping[str, str]
    ) -> ApiAnswer:
        organization = self._organizations[organization_id]
        if method != "GET":
            return commerce_error(405, 37, "The HTTP method is not allowed for the requested resource")
        entry = {"organization_id": organization.id, "name": organization.name}
        if path == "/organizations":
            return ApiAnswer(200, {"code": 0, "message": "success", "organizations": [entry]})
        match = _COMMERCE_ORGANIZATION.match(path)
        if match is not None:
            if match["id"] != organization.id:
                return commerce_error(401, 57, "You are not authorized to perform this operation")
            return ApiAnswer(200, {"code": 0, "message": "success", "organization": entry})
        if path == "/products":
            header = headers.get(COMMERCE_ORGANIZATION_HEADER)
            if not header:
                return commerce_error(400, 2, "Invalid value passed for X-com-zoho-store-organizationid")
            if header != organization.id:
                return commerce_error(401, 57, "You are not authorized to perform this operation")
            products = [{"product_id": "1", "name": f"{organization.name} sample product"}]
            page_context = {"page": 1, "per_page": 200, "has_more_page": False}
            return ApiAnswer(
                200, {"code": 0, "message": "success", "products": products, "page_context": page_context}
            )
        return commerce_error(404, 5, "Invalid URL Passed")


def _prefix(path: str) -> str | None:
    for prefix in (*CRM_LIKE_PREFIXES, *BOOKS_LIKE_PREFIXES, DESK_PREFIX):
        if path.startswith(prefix + "/"):
            return prefix
    return None


def account_choices(accounts: tuple[Account, ...]) -> str:
    """The consent page's "Sign in as" choices: which account (and so which organization) consents."""
    return "".join(
        f'<p><input type="radio" id="account-{n}" name="account" value="{html.escape(a.email)}"'
        f'{" checked" if n == 0 else ""}> <label for="account-{n}">{html.escape(a.email)} '
        f"({html.escape(a.organization.name)})</label></p>"
        for n, a in enumerate(accounts)
    )


def _records_in(document: Any) -> list[Mapping[str, Any]]:
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list) or not data or not all(isinstance(item, dict) for item in data):
        return []
    return data


def _crm_success(record_id: str, message: str) -> dict[str, Any]:
    return {"code": "SUCCESS", "details": {"id": record_id}, "message": message, "status": "success"}

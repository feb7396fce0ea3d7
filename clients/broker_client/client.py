"""ProxyClient: one subscription's Zoho API through the broker (see docs/proxy.md)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import httpx

from broker_cli.signing import should_sign, sigv4_for

DEFAULT_TIMEOUT_SECONDS = 30.0
# How long the broker may hold a call for its turn before answering 429 (its limit is 10 s).
DEFAULT_MAX_WAIT_SECONDS = 10.0
DEFAULT_RETRIES = 5
MAX_RETRY_AFTER_SECONDS = 60.0
TOKEN_MARGIN = timedelta(minutes=5)


class BrokerCallError(Exception):
    """The broker refused a call itself (not Zoho): ``code`` is its error code, e.g. not_connected."""

    def __init__(self, response: httpx.Response) -> None:
        try:
            document = response.json()
        except ValueError:
            document = {}
        self.status = response.status_code
        self.code = str(document.get("error") or response.headers.get("x-broker-error") or "unknown")
        message = str(document.get("message") or response.reason_phrase)
        super().__init__(f"{message} ({self.code}, HTTP {self.status})")


class ProxyClient:
    """Calls go to ``{base_url}/proxy/{subscription_id}/{path}``; ``path`` is relative to the
    subscription's API base (CRM: ``Leads``, ``org``; Commerce: ``products``).

    Requests are signed with SigV4 (execute-api) when the URL is https and not this machine, with
    credentials from the usual AWS chain (``profile``, ``region`` as the CLI takes them). A 429, from
    the broker's throttle or from Zoho, is retried after its Retry-After, at most ``retries`` times.
    Answers come back as httpx.Response, whatever their status: Zoho's errors are Zoho's to explain.
    """

    def __init__(
        self,
        base_url: str,
        subscription_id: str,
        *,
        sign: bool | None = None,
        region: str | None = None,
        profile: str | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS,
        retries: int = DEFAULT_RETRIES,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.subscription_id = subscription_id
        self.max_wait_seconds = max_wait_seconds
        self.retries = retries
        self._sleep = sleep
        self._token: tuple[str, datetime] | None = None
        self._owns_http = http is None
        if http is None:
            auth = (
                sigv4_for(base_url, region=region, profile=profile) if should_sign(base_url, sign) else None
            )
            http = httpx.Client(
                base_url=base_url.rstrip("/"),
                auth=auth,
                timeout=httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds)),
                follow_redirects=False,
            )
        self._http = http

    def __enter__(self) -> ProxyClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # ----------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One call through the proxy, retried on 429 after Retry-After. Raises BrokerCallError when the
        broker itself refused it for another reason (not connected, invalid path, ...)."""
        relative = path.lstrip("/")
        if any(segment in (".", "..") for segment in relative.split("/")):
            # httpx would resolve them before sending, and the call would leave the subscription's path.
            raise ValueError(f"the path {path!r} has . or .. segments: give a path under the API base")
        sent_headers = {"X-Broker-Max-Wait": f"{self.max_wait_seconds:g}", **(headers or {})}
        url = f"/proxy/{self.subscription_id}/{relative}"
        for attempt in range(self.retries + 1):
            response = self._http.request(
                method, url, params=params, json=json, content=content, headers=sent_headers
            )
            if response.status_code != 429 or attempt == self.retries:
                break
            self._sleep(_retry_after(response))
        if "x-broker-error" in response.headers and response.status_code != 429:
            raise BrokerCallError(response)
        return response

    def get(self, path: str, *, params: Mapping[str, Any] | None = None) -> httpx.Response:
        return self.request("GET", path, params=params)

    def post(self, path: str, *, json: Any = None, content: bytes | None = None, **kw: Any) -> httpx.Response:
        return self.request("POST", path, json=json, content=content, **kw)

    def put(self, path: str, *, json: Any = None, content: bytes | None = None, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, json=json, content=content, **kw)

    def patch(
        self, path: str, *, json: Any = None, content: bytes | None = None, **kw: Any
    ) -> httpx.Response:
        return self.request("PATCH", path, json=json, content=content, **kw)

    def delete(self, path: str, *, params: Mapping[str, Any] | None = None) -> httpx.Response:
        return self.request("DELETE", path, params=params)

    def pages(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        per_page: int = 200,
        records: str = "data",
    ) -> Iterator[Any]:
        """Every record of a Zoho CRM list, page after page (``page``/``per_page``, until
        ``info.more_records`` is false or Zoho answers 204 No Content)."""
        page = 1
        while True:
            response = self.get(path, params={**(params or {}), "page": page, "per_page": per_page})
            if response.status_code == 204:
                return
            response.raise_for_status()
            document = response.json()
            yield from document.get(records) or []
            if not (document.get("info") or {}).get("more_records"):
                return
            page += 1

    def token(self) -> str:
        """An access token for calling Zoho directly (outside the broker's throttling), cached until five
        minutes before it expires. The admin API's token route: the caller needs execute-api:Invoke on it."""
        now = datetime.now().astimezone()
        if self._token is not None and self._token[1] - TOKEN_MARGIN > now:
            return self._token[0]
        response = self._http.get(f"/admin/subscriptions/{self.subscription_id}/token")
        if not response.is_success:
            raise BrokerCallError(response)
        document = response.json()
        expires_at = datetime.fromisoformat(str(document["expires_at"]).replace("Z", "+00:00"))
        self._token = (str(document["access_token"]), expires_at)
        return self._token[0]


def _retry_after(response: httpx.Response) -> float:
    try:
        seconds = float(response.headers.get("retry-after", "1"))
    except ValueError:
        seconds = 1.0
    return min(MAX_RETRY_AFTER_SECONDS, max(0.0, seconds))

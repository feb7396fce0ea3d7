"""HTTP to the broker's admin API: one method per verb, errors turned into CliError subclasses."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from broker_cli import __version__
from broker_cli.errors import ApiError, CliError, Unreachable

DEFAULT_URL = "http://127.0.0.1:3000"
DEFAULT_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 5.0
SAFE_METHODS = frozenset({"GET", "HEAD"})
FORBIDDEN_HINT = (
    "API Gateway refused the request: the admin API needs a SigV4 signature from AWS credentials "
    "allowed to call execute-api:Invoke on it (see --sign, --profile, --region)"
)


class BrokerClient:
    """The admin API at ``base_url``; signed when ``auth`` is given."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            timeout=httpx.Timeout(timeout_seconds, connect=min(CONNECT_TIMEOUT_SECONDS, timeout_seconds)),
            headers={"User-Agent": f"broker-cli/{__version__}", "Accept": "application/json"},
            follow_redirects=False,
            transport=transport,
        )

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def http(self) -> httpx.Client:
        """The signed HTTP client, for calls that are not the admin API's JSON (the proxy)."""
        return self._http

    def get(self, path: str, *, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", path, body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """The answer's JSON (None for an empty answer); raises ApiError, Unreachable or CliError."""
        try:
            response = self._http.request(method, path, json=body, params=params)
        except httpx.TimeoutException as error:
            maybe = "" if method in SAFE_METHODS else "; the change may still have been made"
            raise Unreachable(
                f"cannot reach the broker at {self.base_url}: no answer within "
                f"{self.timeout_seconds:g} s ({type(error).__name__}){maybe}"
            ) from None
        except httpx.TransportError as error:
            reason = str(error) or type(error).__name__
            raise Unreachable(f"cannot reach the broker at {self.base_url}: {reason}") from None
        if response.is_success:
            return _document(response, self.base_url)
        raise _api_error(response)


def _document(response: httpx.Response, base_url: str) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        raise CliError(
            f"the answer from {base_url} is not JSON (HTTP {response.status_code}, {kind}): "
            "is this the broker's URL?"
        ) from None


def _api_error(response: httpx.Response) -> ApiError:
    status = response.status_code
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("message"), str):
        text = " ".join(response.text.split())[:200] or response.reason_phrase
        return ApiError(f"HTTP {status} from the broker: {text}", status=status, code=None)
    message: str = document["message"]
    code = document.get("error")
    if not isinstance(code, str):
        # API Gateway's own answers ({"message": "Forbidden"}) carry no error code.
        if status == 403:
            return ApiError(f"{FORBIDDEN_HINT} ({message}, HTTP 403)", status=status, code=None)
        if status == 404:
            return ApiError(
                f"no such route at {response.url.copy_with(query=None)} ({message}, HTTP 404): "
                "is --url the broker's API?",
                status=status,
                code=None,
            )
        return ApiError(f"{message} (HTTP {status})", status=status, code=None)
    details = []
    for item in document.get("details") or []:
        if isinstance(item, dict):
            field, problem = item.get("field"), item.get("message")
            details.append(f"{field}: {problem}" if field else str(problem))
    return ApiError(f"{message} ({code}, HTTP {status})", status=status, code=code, details=details)

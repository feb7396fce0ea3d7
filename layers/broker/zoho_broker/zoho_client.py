"""Zoho's token endpoint, with timeouts and Zoho's HTTP-200 errors turned into ZohoError."""

from __future__ import annotations

import logging
import ssl
from typing import Any

import httpx
from pydantic import BaseModel, Field, ValidationError

from zoho_broker.errors import ZohoError

# httpx logs every request's URL at INFO, and Zoho's revoke endpoint takes the refresh token in the URL.
logging.getLogger("httpx").setLevel(logging.WARNING)

# Zoho's answers when a client calls the token endpoint too often: "access_denied" (with "too many
# requests" in the description) or "Access Denied". Neither ever means that a token is gone.
# Compared without case, spaces or underscores.
RATE_LIMIT_ERROR = "accessdenied"


class TokenResponse(BaseModel):
    access_token: str = Field(min_length=1)
    refresh_token: str | None = None
    api_domain: str | None = None
    token_type: str = "Bearer"
    expires_in: int = Field(default=3600, gt=0)

    def __repr__(self) -> str:
        return f"TokenResponse(api_domain={self.api_domain!r}, expires_in={self.expires_in})"

    __str__ = __repr__


class TransportPerScheme(httpx.BaseTransport):
    """httpx's own transport, made on the first request of each scheme.

    Made with the client, it would load certifi's certificates into a TLS context on every cold start
    (tens of milliseconds) before anything is sent, and also for a plain-http accounts server (the local
    stand-in), which needs none: its context holds no certificate, so it can verify nothing.
    """

    def __init__(self) -> None:
        self._made: dict[str, httpx.HTTPTransport] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        scheme = request.url.scheme
        transport = self._made.get(scheme)
        if transport is None:
            verify: ssl.SSLContext | bool = (
                True if scheme == "https" else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            )
            transport = self._made[scheme] = httpx.HTTPTransport(verify=verify)
        return transport.handle_request(request)

    def close(self) -> None:
        for transport in self._made.values():
            transport.close()


class ZohoClient:
    """Owns one httpx.Client (connection reuse across warm invocations)."""

    def __init__(
        self, *, timeout_seconds: float = 10.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds, connect=min(3.0, timeout_seconds)),
            follow_redirects=False,
            transport=transport or TransportPerScheme(),
            headers={"User-Agent": "zoho-oauth-broker"},
        )

    def close(self) -> None:
        self._http.close()

    def exchange_code(
        self, *, token_url: str, client_id: str, client_secret: str, code: str, redirect_uri: str | None
    ) -> TokenResponse:
        """A grant code for tokens; a Self Client's code comes with no redirect URI."""
        form = {
            "grant_type": "authorization_code",
            "client_id": client_id,
            "client_secret": client_secret,
            "code": code,
        }
        if redirect_uri is not None:
            form["redirect_uri"] = redirect_uri
        return self._token_call(token_url, form)

    def refresh(
        self, *, token_url: str, client_id: str, client_secret: str, refresh_token: str
    ) -> TokenResponse:
        return self._token_call(
            token_url,
            {
                "grant_type": "refresh_token",
                "client_id": client_id,
                "client_secret": client_secret,
                "refresh_token": refresh_token,
            },
        )

    def revoke(self, *, revoke_url: str, refresh_token: str) -> None:
        """Revoke a refresh token (and its access tokens); Zoho takes it as a query parameter."""
        response = self._post(revoke_url, params={"token": refresh_token})
        body = _json_object(response)
        if body.get("error"):
            raise _error_from(body, response.status_code)
        if not response.is_success:
            raise ZohoError(
                f"Zoho answered HTTP {response.status_code} to the revocation.",
                zoho_code=f"http_{response.status_code}",
                transient=True,
            )

    def api_get(
        self,
        url: str,
        *,
        access_token: str,
        headers: dict[str, str],
        params: dict[str, str],
        timeout_seconds: float,
    ) -> Any:
        """GET a Zoho API resource and give its JSON; anything else is a ZohoError naming why.

        The token goes in the Authorization header only, never in the URL (httpx would log a URL).
        """
        try:
            response = self._http.get(
                url,
                headers={**headers, "Authorization": f"Zoho-oauthtoken {access_token}"},
                params=params,
                timeout=httpx.Timeout(timeout_seconds, connect=min(3.0, timeout_seconds)),
            )
        except httpx.TimeoutException as error:
            raise ZohoError(
                "Zoho's API did not answer in time.", zoho_code="timeout", transient=True
            ) from error
        except httpx.HTTPError as error:
            raise ZohoError(
                "Zoho's API could not be reached.", zoho_code="unreachable", transient=True
            ) from error
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not response.is_success:
            code = body.get("code") if isinstance(body, dict) else None
            detail = f" {str(code)[:64]}" if isinstance(code, str | int) else ""
            raise ZohoError(
                f"Zoho's API answered HTTP {response.status_code}{detail}.",
                zoho_code=f"http_{response.status_code}{detail}",
                transient=response.status_code >= 500 or response.status_code == 429,
            )
        if body is None:
            raise ZohoError(
                f"Zoho's API answered HTTP {response.status_code} without JSON.",
                zoho_code="bad_response",
                transient=True,
            )
        return body

    def _post(self, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.post(url, **kwargs)
        except httpx.TimeoutException as error:
            raise ZohoError("Zoho did not answer in time.", zoho_code="timeout", transient=True) from error
        except httpx.HTTPError as error:
            raise ZohoError("Zoho could not be reached.", zoho_code="unreachable", transient=True) from error
        if response.status_code >= 500 or response.status_code == 429:
            raise ZohoError(
                f"Zoho answered HTTP {response.status_code}.",
                zoho_code=f"http_{response.status_code}",
                transient=True,
            )
        return response

    def _token_call(self, url: str, form: dict[str, str]) -> TokenResponse:
        response = self._post(url, data=form)
        try:
            body: Any = response.json()
        except ValueError as error:
            raise ZohoError(
                "Zoho answered something that is not JSON.", zoho_code="bad_response", transient=True
            ) from error
        if not isinstance(body, dict):
            raise ZohoError("Zoho answered an unexpected document.", zoho_code="bad_response", transient=True)
        if "access_token" not in body:
            raise _error_from(body, response.status_code)
        try:
            return TokenResponse.model_validate(body)
        except ValidationError as error:
            raise ZohoError(
                "Zoho's token answer was incomplete.", zoho_code="bad_response", transient=True
            ) from error


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; empty when it is none (Zoho confirms a revocation in plain text too)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_from(body: dict[str, Any], status_code: int) -> ZohoError:
    code = str(body.get("error") or f"http_{status_code}")[:64]
    if code.replace(" ", "").replace("_", "").lower() == RATE_LIMIT_ERROR:
        return ZohoError(
            "Zoho asks us to slow down (too many requests).", zoho_code="rate_limited", transient=True
        )
    return ZohoError(f"Zoho refused the request ({code}).", zoho_code=code, transient=False)

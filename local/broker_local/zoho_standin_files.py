"""Zoho CRM's Files API on the stand-in: bytes in, the same bytes out, so binary bodies can be checked
end to end through the proxy. Wraps the stand-in's API (zoho_standin_api) and serves only
``/crm/v8/files``: ``POST`` stores the body and answers its id, ``GET ?id=`` answers the bytes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from broker_local.zoho_standin_api import CRM_PREFIX, INVALID_TOKEN, ApiAnswer, StandInApi, crm_error

FILES_PATH = CRM_PREFIX + "/files"


@dataclass
class BytesAnswer(ApiAnswer):
    """An answer whose body is raw bytes, not JSON."""

    raw: bytes = b""

    def body(self) -> bytes:
        return self.raw


class FilesApi:
    """The stand-in's API plus the Files API; everything else goes to the wrapped API."""

    def __init__(self, api: StandInApi) -> None:
        self._api = api
        self._files: dict[str, bytes] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    def serves(self, path: str) -> bool:
        return path == FILES_PATH or self._api.serves(path)

    def handle(
        self, dc: str, method: str, path: str, params: dict[str, str], headers: Any, body: bytes
    ) -> ApiAnswer:
        if path != FILES_PATH:
            return self._api.handle(dc, method, path, params, headers, body)
        scheme, _, token = str(headers.get("Authorization", "")).partition(" ")
        if scheme != "Zoho-oauthtoken" or self._api._token_organization(token.strip(), dc) is None:
            return INVALID_TOKEN
        if method == "POST":
            file_id = secrets.token_hex(8)
            self._files[file_id] = body
            return ApiAnswer(
                200, {"data": [{"code": "SUCCESS", "details": {"id": file_id}, "status": "success"}]}
            )
        stored = self._files.get(params.get("id", ""))
        if method != "GET" or stored is None:
            return crm_error(400, "INVALID_DATA", "invalid data", {"param_name": "id"})
        return BytesAnswer(200, None, {"X-File-Size": str(len(stored))}, raw=stored)

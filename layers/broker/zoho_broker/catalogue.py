"""The integrations catalogue: Zoho products as data (integrations.json), validated by pydantic.

Adding a Zoho product is a new entry in the JSON file, not a new module.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field, model_validator

from zoho_broker.errors import InvalidInput, NotFound

# Placeholders an OAuth URL template may use: the seeds' own names plus {Scopes} and {State}.
PLACEHOLDER = re.compile(r"\{([A-Za-z_]+(?::[A-Za-z0-9_]+)?)\}")
STATE_PLACEHOLDERS = frozenset({"iPaaSState", "State"})
SIMPLE_PLACEHOLDERS = frozenset({"Client_Id", "Scopes"}) | STATE_PLACEHOLDERS
CUSTOM_FIELD_PREFIX = "SystemTypeVersion:"
REDIRECT_URL_FIELD = "RedirectUrl"


class Throttling(BaseModel):
    """How hard sync jobs may call Zoho's API for one subscription."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int = Field(ge=1, le=100_000)
    max_concurrent_requests: int = Field(ge=1, le=1_000)


class CustomField(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
    description: str = ""
    required: bool = False
    default: str | None = None


class IntegrationVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=32)
    oauth_url_template: str = Field(min_length=1)
    token_path: str = "/oauth/v2/token"
    revoke_path: str = "/oauth/v2/token/revoke"
    default_scopes: list[str] = Field(min_length=1)
    default_api_url: str
    custom_fields: list[CustomField] = Field(default_factory=list)
    default_throttling: Throttling

    @model_validator(mode="after")
    def _template_is_complete(self) -> IntegrationVersion:
        names = set(PLACEHOLDER.findall(self.oauth_url_template))
        field_names = {field.name for field in self.custom_fields}
        for name in names:
            if name.startswith(CUSTOM_FIELD_PREFIX):
                if name.removeprefix(CUSTOM_FIELD_PREFIX) not in field_names:
                    raise ValueError(f"template placeholder {{{name}}} names no custom field of this version")
            elif name not in SIMPLE_PLACEHOLDERS:
                raise ValueError(f"unknown template placeholder {{{name}}}")
        if not names & STATE_PLACEHOLDERS:
            raise ValueError("the template must carry the state, as {iPaaSState} or {State}")
        if "Client_Id" not in names:
            raise ValueError("the template must carry {Client_Id}")
        return self

    def custom_field(self, name: str) -> CustomField | None:
        return next((field for field in self.custom_fields if field.name == name), None)


class Integration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9-]{1,63}$")
    name: str
    versions: list[IntegrationVersion] = Field(min_length=1)

    def get_version(self, version: str) -> IntegrationVersion:
        for candidate in self.versions:
            if candidate.version == version:
                return candidate
        known = ", ".join(v.version for v in self.versions)
        raise InvalidInput(f"Integration {self.id!r} has no version {version!r} (known: {known}).")

    @property
    def latest(self) -> IntegrationVersion:
        return self.versions[-1]


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    integrations: list[Integration]

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalogue:
        ids = [integration.id for integration in self.integrations]
        if len(ids) != len(set(ids)):
            raise ValueError("integration ids must be unique")
        return self

    def get(self, integration_id: str) -> Integration:
        for integration in self.integrations:
            if integration.id == integration_id:
                return integration
        known = ", ".join(i.id for i in self.integrations)
        raise NotFound(f"Unknown integration {integration_id!r} (known: {known}).")


@cache
def load_catalogue() -> Catalogue:
    text = resources.files("zoho_broker").joinpath("integrations.json").read_text(encoding="utf-8")
    return Catalogue.model_validate_json(text)

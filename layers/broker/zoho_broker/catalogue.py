"""The integrations catalogue: Zoho products and their versions, validated by pydantic.

The packaged ``integrations.json`` is the built-in starting content; an operator's edits are stored in
DynamoDB (store/integrations.py) and win over it, integration by integration (logic/integrations.py).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from zoho_broker.data_centres import ZOHO_ACCOUNTS_SERVERS
from zoho_broker.errors import InvalidInput, NotFound

# Placeholders an OAuth URL template may use: the seeds' own names plus {Scopes} and {State}.
PLACEHOLDER = re.compile(r"\{([A-Za-z_]+(?::[A-Za-z0-9_]+)?)\}")
# Anything in braces, so a misspelt placeholder ({client-id}) is named rather than sent to Zoho as is.
ANY_BRACES = re.compile(r"\{([^{}]*)\}")
STATE_PLACEHOLDERS = frozenset({"iPaaSState", "State"})
SIMPLE_PLACEHOLDERS = frozenset({"Client_Id", "Scopes"}) | STATE_PLACEHOLDERS
CUSTOM_FIELD_PREFIX = "SystemTypeVersion:"
REDIRECT_URL_FIELD = "RedirectUrl"
# A template sends the person (and later the code exchange goes) to one of Zoho's own accounts servers.
ACCOUNTS_HOSTS = frozenset(urlsplit(url).hostname or "" for url in ZOHO_ACCOUNTS_SERVERS.values())
KNOWN_PLACEHOLDERS = "{Client_Id}, {iPaaSState} (or {State}), {Scopes} and {SystemTypeVersion:<custom field>}"
# Where a value sits in a JSON answer: dotted names with list indexes, e.g. org[0].company_name.
JSON_PATH = (
    r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\[[0-9]{1,3}\])?(\.[A-Za-z_][A-Za-z0-9_]{0,63}(\[[0-9]{1,3}\])?){0,7}$"
)
# Headers the broker sets itself (or HTTP does): a version may not replace them.
RESERVED_HEADERS = frozenset(
    {"authorization", "host", "content-length", "content-type", "cookie", "connection"}
)
HeaderName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$")]
ParameterName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")]
ApiValueTemplate = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f\x7f]*$")]


class AuthorizationType(StrEnum):
    """How a subscription of this version gets its tokens."""

    # The seeds' "OAuth Initiated within iPaaS": a person opens a connect link and consents at Zoho.
    CONNECT_LINK = "connect_link"
    # Zoho's Self Client: the account owner generates a grant code in the API Console; the operator
    # submits it and the broker exchanges it.
    SELF_CLIENT = "self_client"


class Throttling(BaseModel):
    """How hard sync jobs may call Zoho's API for one subscription."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int = Field(ge=1, le=100_000)
    max_concurrent_requests: int = Field(ge=1, le=1_000)


class CustomField(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
    description: str = Field(default="", max_length=1000)
    required: bool = False
    default: str | None = Field(default=None, max_length=2048)


class Verification(BaseModel):
    """The call that names the Zoho organization a consent connected: a GET under the API base.

    Its answer's organization id and name are recorded on the subscription, and a later consent that
    yields another organization is refused (docs/organizations.md).
    """

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        pattern=r"^/[A-Za-z0-9/._:{}-]{0,200}$",
        description="Under the API base, e.g. /org; may name {SystemTypeVersion:<custom field>}.",
    )
    organization_id: str = Field(pattern=JSON_PATH, description="Where the id is in the answer: org[0].id")
    organization_name: str = Field(
        pattern=JSON_PATH, description="Where the name is in the answer: org[0].company_name"
    )


class Paging(BaseModel):
    """How the API pages lists: a page number, a page size and a flag saying more records follow."""

    model_config = ConfigDict(extra="forbid")

    style: Literal["page"] = "page"
    page_parameter: str = Field(default="page", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    per_page_parameter: str = Field(default="per_page", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    more_records: str = Field(
        default="info.more_records", pattern=JSON_PATH, description="Where the answer says more follow."
    )
    max_per_page: int = Field(default=200, ge=1, le=10_000)


def custom_field_problems(where: str, text: str, field_names: set[str]) -> list[str]:
    """Placeholders in an API header, query parameter or verification path: only custom fields."""
    problems: list[str] = []
    for name in sorted(set(ANY_BRACES.findall(text))):
        if not (name.startswith(CUSTOM_FIELD_PREFIX) and PLACEHOLDER.fullmatch("{" + name + "}")):
            problems.append(
                f"{where}: unknown placeholder {{{name}}}: use {{SystemTypeVersion:<custom field>}}"
            )
        elif name.removeprefix(CUSTOM_FIELD_PREFIX) not in field_names:
            problems.append(f"{where}: the placeholder {{{name}}} names no custom field of this version")
    if text.count("{") != text.count("}"):
        problems.append(f"{where}: unbalanced braces")
    return problems


def template_problems(template: str, field_names: set[str]) -> list[str]:
    """Everything wrong with an OAuth URL template, each problem named so an integrator can fix it."""
    problems: list[str] = []
    names = set(ANY_BRACES.findall(template))
    for name in sorted(names):
        if name.startswith(CUSTOM_FIELD_PREFIX) and PLACEHOLDER.fullmatch("{" + name + "}"):
            if name.removeprefix(CUSTOM_FIELD_PREFIX) not in field_names:
                problems.append(f"template placeholder {{{name}}} names no custom field of this version")
        elif name not in SIMPLE_PLACEHOLDERS:
            problems.append(f"unknown template placeholder {{{name}}}: use {KNOWN_PLACEHOLDERS}")
    if not names & STATE_PLACEHOLDERS:
        problems.append("the template must carry the state, as {iPaaSState} or {State}")
    if "Client_Id" not in names:
        problems.append("the template must carry {Client_Id}")
    try:
        parts = urlsplit(template)
        host = parts.hostname or ""
    except ValueError:
        return [*problems, "the template is not a URL"]
    if parts.scheme != "https":
        problems.append("the template must be an https URL")
    if host not in ACCOUNTS_HOSTS:
        problems.append(
            f"the template's host {host or '(none)'} is not one of Zoho's accounts servers "
            f"({', '.join(sorted(ACCOUNTS_HOSTS))})"
        )
    response_types = [
        value for key, value in parse_qsl(parts.query, keep_blank_values=True) if key == "response_type"
    ]
    if response_types != ["code"]:
        given = ", ".join(response_types) or "none"
        problems.append(f"the template must ask for response_type=code (it has {given})")
    return problems


class IntegrationVersionFields(BaseModel):
    """What an integrator sets on a version (the seed's Version dialog)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    version: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    authorization_type: AuthorizationType = AuthorizationType.CONNECT_LINK
    oauth_url_template: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="Required for connect_link; a Self Client version needs none.",
    )
    token_path: str = Field(default="/oauth/v2/token", pattern=r"^/[A-Za-z0-9/._-]{0,200}$")
    revoke_path: str = Field(default="/oauth/v2/token/revoke", pattern=r"^/[A-Za-z0-9/._-]{0,200}$")
    default_scopes: list[str] = Field(min_length=1, max_length=100)
    default_api_url: str = Field(min_length=1, max_length=2048, pattern=r"^https://[^\s]+$")
    custom_fields: list[CustomField] = Field(default_factory=list, max_length=50)
    default_throttling: Throttling
    verification: Verification | None = Field(
        default=None, description="The call naming the connected Zoho organization; none: no binding."
    )
    api_headers: dict[HeaderName, ApiValueTemplate] = Field(
        default_factory=dict,
        max_length=20,
        description="Headers every API call carries, e.g. X-com-zoho-store-organizationid: "
        "{SystemTypeVersion:OrganizationId}.",
    )
    api_query_parameters: dict[ParameterName, ApiValueTemplate] = Field(
        default_factory=dict,
        max_length=20,
        description="Query parameters every API call carries, e.g. organization_id: "
        "{SystemTypeVersion:OrganizationId}.",
    )
    paging: Paging | None = Field(default=None, description="How lists are paged; none: not paged.")

    @model_validator(mode="after")
    def _template_is_complete(self) -> IntegrationVersionFields:
        problems: list[str] = []
        counted: dict[str, int] = {}
        for field in self.custom_fields:
            counted[field.name] = counted.get(field.name, 0) + 1
        problems += [f"the custom field {name} is defined {n} times" for name, n in counted.items() if n > 1]
        if self.oauth_url_template is not None:
            problems += template_problems(self.oauth_url_template, set(counted))
        elif self.authorization_type == AuthorizationType.CONNECT_LINK:
            problems.append("a connect_link version needs an oauth_url_template")
        problems += self._api_problems(set(counted))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _api_problems(self, field_names: set[str]) -> list[str]:
        problems: list[str] = []
        lowered = [name.lower() for name in self.api_headers]
        problems += [
            f"api_headers: {name} is given twice" for name in sorted(set(lowered)) if lowered.count(name) > 1
        ]
        for name, value in self.api_headers.items():
            if name.lower() in RESERVED_HEADERS:
                problems.append(f"api_headers: the broker sets {name} itself")
            problems += custom_field_problems(f"api_headers.{name}", value, field_names)
        for name, value in self.api_query_parameters.items():
            problems += custom_field_problems(f"api_query_parameters.{name}", value, field_names)
        if self.verification is not None:
            path = self.verification.path
            problems += custom_field_problems("verification.path", path, field_names)
            if "//" in path or "/../" in f"{path}/" or "/./" in f"{path}/":
                problems.append("verification.path: no empty, . or .. segments")
        return problems

    def custom_field(self, name: str) -> CustomField | None:
        return next((field for field in self.custom_fields if field.name == name), None)

    def scopes(self) -> frozenset[str]:
        """The scopes a consent asks for: the template's literal scope list, else the default scopes."""
        if self.oauth_url_template and "{Scopes}" not in self.oauth_url_template:
            query = urlsplit(self.oauth_url_template).query
            literal = [value for key, value in parse_qsl(query) if key == "scope"]
            if literal:
                return frozenset(scope for scope in literal[0].split(",") if scope)
        return frozenset(self.default_scopes)


class IntegrationVersion(IntegrationVersionFields):
    """A version as stored and shown: the integrator's fields and who changed them last, when."""

    changed_by: str | None = Field(default=None, description="The IAM caller who last changed it.")
    changed_at: datetime | None = None


class Integration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9-]{1,63}$")
    name: str = Field(min_length=1, max_length=128)
    description: str = Field(
        default="", max_length=4000, description="What it connects, and any fact not confirmed with Zoho."
    )
    versions: list[IntegrationVersion] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_versions(self) -> Integration:
        names = [version.version for version in self.versions]
        if len(names) != len(set(names)):
            raise ValueError(f"the versions of {self.id} must have different names")
        return self

    def find_version(self, version: str) -> IntegrationVersion | None:
        return next((candidate for candidate in self.versions if candidate.version == version), None)

    def get_version(self, version: str) -> IntegrationVersion:
        found = self.find_version(version)
        if found is None:
            known = ", ".join(v.version for v in self.versions)
            raise InvalidInput(f"Integration {self.id!r} has no version {version!r} (known: {known}).")
        return found

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

    def find(self, integration_id: str) -> Integration | None:
        return next((i for i in self.integrations if i.id == integration_id), None)

    def get(self, integration_id: str) -> Integration:
        integration = self.find(integration_id)
        if integration is not None:
            return integration
        known = ", ".join(i.id for i in self.integrations)
        raise NotFound(f"Unknown integration {integration_id!r} (known: {known}).")


@cache
def load_catalogue() -> Catalogue:
    text = resources.files("zoho_broker").joinpath("integrations.json").read_text(encoding="utf-8")
    return Catalogue.model_validate_json(text)


class StoredIntegration(Integration):
    """An integration as stored in DynamoDB: it wins over the built-in of the same id as a whole."""

    # Bumped by every write; a write names the revision it read, so concurrent edits cannot lose one.
    revision: int = Field(default=0, ge=0)
    # Versions being deleted: no subscription may start using them (see logic/integrations.py).
    retiring: list[str] = Field(default_factory=list)

    def as_integration(self) -> Integration:
        return Integration.model_validate(self.model_dump(exclude={"revision", "retiring"}))

"""Pydantic models at every boundary: the admin API's bodies and answers, stored items, secrets."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.config import JsonDict

from zoho_broker.catalogue import (
    ApiValueTemplate,
    AuthorizationType,
    CustomField,
    HeaderName,
    IntegrationVersion,
    IntegrationVersionFields,
    Paging,
    ParameterName,
    Throttling,
    Verification,
)
from zoho_broker.masking import mask


class BrokerModel(BaseModel):
    """Every model here: its validator is built when first used, not at import. A function uses a few
    of these models, and building all of them cost each cold start more than its share."""

    model_config = ConfigDict(defer_build=True)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL")
    return value.rstrip("/")


# The pattern only documents what _check_http_url accepts; it is not what validates.
HttpUrlText = Annotated[
    str,
    Field(max_length=2048, json_schema_extra={"pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\s]"}),
    AfterValidator(_check_http_url),
]
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]
ClientId = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._-]+$")]
ClientSecretValue = Annotated[SecretStr, Field(min_length=1, max_length=512)]
CustomFieldValues = Annotated[
    dict[
        Annotated[str, Field(max_length=64)],
        Annotated[str, Field(max_length=2048, pattern=r"^[^\x00-\x1f\x7f]*$")],
    ],
    Field(max_length=50),
]


class ConnectionStatus(StrEnum):
    NOT_CONNECTED = "not_connected"
    CONNECTED = "connected"
    NEEDS_REAUTHENTICATION = "needs_reauthentication"


class SubscriptionCreate(BrokerModel):
    """Body of POST /admin/subscriptions (the seed's Subscription Settings)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    integration: str = Field(min_length=1, max_length=64)
    version: str | None = Field(default=None, max_length=32, description="Defaults to the latest version.")
    client_id: ClientId
    client_secret: ClientSecretValue
    client_secrets_by_data_centre: dict[str, ClientSecretValue] = Field(
        default_factory=dict,
        description="Only when the Zoho API Console gives a different secret per data centre.",
    )
    api_url: HttpUrlText | None = Field(default=None, description="Defaults to the version's API URL.")
    throttling: Throttling | None = Field(default=None, description="Defaults to the version's settings.")
    custom_fields: CustomFieldValues = Field(default_factory=dict)


def _given_fields_are_never_null(schema: JsonDict, model: type[Any]) -> None:
    """The documented schema of a body whose fields may be left out but are never null.

    The fields default to None only to tell "left out" apart; the model's validator refuses null and
    an empty body, so the document offers neither (except for the fields null removes).
    """
    properties = schema.get("properties")
    nullable: frozenset[str] = getattr(model, "nullable_fields", frozenset())
    for name, field in properties.items() if isinstance(properties, dict) else ():
        if not isinstance(field, dict):
            continue
        if name in nullable:
            field.pop("default", None)
            continue
        choices = field.pop("anyOf", None)
        kept = (
            [choice for choice in choices if choice != {"type": "null"}] if isinstance(choices, list) else []
        )
        if len(kept) == 1 and isinstance(kept[0], dict):
            field.update(kept[0])
        elif kept:
            field["anyOf"] = kept
        field.pop("default", None)
    schema["minProperties"] = 1


class PartialUpdate(BrokerModel):
    """A PATCH body: only the fields given change; none may be null and at least one is given.

    The fields named in ``nullable_fields`` take null as "remove it".
    """

    nullable_fields: ClassVar[frozenset[str]] = frozenset()

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra=_given_fields_are_never_null
    )

    @model_validator(mode="before")
    @classmethod
    def _something_to_change(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if not data:
                raise ValueError("the body changes nothing: give at least one field")
            nulls = sorted(
                str(key) for key, value in data.items() if value is None and key not in cls.nullable_fields
            )
            if nulls:
                raise ValueError(f"{', '.join(nulls)} cannot be null: leave a field out to keep it")
        return data


class SubscriptionUpdate(PartialUpdate):
    """Body of PATCH /admin/subscriptions/{id}: only the fields given change.

    A new ``version`` moves the subscription to it (its custom fields are checked against that version).
    """

    name: Name | None = None
    version: str | None = Field(default=None, max_length=32)
    client_id: ClientId | None = None
    client_secret: ClientSecretValue | None = None
    client_secrets_by_data_centre: dict[str, ClientSecretValue] | None = None
    api_url: HttpUrlText | None = None
    throttling: Throttling | None = None
    custom_fields: CustomFieldValues | None = None
    organization: None = Field(
        default=None,
        description="null clears the organization binding, so the next consent may connect another one.",
    )

    nullable_fields: ClassVar[frozenset[str]] = frozenset({"organization"})


class GrantCodeSubmission(BrokerModel):
    """Body of POST /admin/subscriptions/{id}/grant-code: a Self Client grant code, and where it was made."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: Annotated[SecretStr, Field(min_length=1, max_length=512)] = Field(
        description="The grant code the account owner generated in the API Console's Self Client (never echoed)."
    )
    data_centre: str = Field(
        min_length=2,
        max_length=8,
        pattern=r"^[a-z]{2,8}$",
        description="The data centre whose API Console generated it (us, eu, in, au, jp, ca, sa, uk, cn).",
    )


class BoundOrganization(BrokerModel):
    """The Zoho organization a subscription's consent connected, as the version's verification call named it.

    A later consent for another organization is refused until an operator clears it.
    """

    id: str = Field(max_length=128)
    name: str = Field(max_length=256)
    verified_at: datetime


class Subscription(BrokerModel):
    """A subscription as stored in DynamoDB: no secret ever lives here."""

    model_config = ConfigDict(extra="ignore")

    subscription_id: str
    name: str
    integration: str
    version: str
    client_id: str
    api_url: str
    throttling: Throttling
    custom_fields: dict[str, str] = Field(default_factory=dict)
    status: ConnectionStatus = ConnectionStatus.NOT_CONNECTED
    data_centre: str | None = None
    api_domain: str | None = None
    access_token_expires_at: datetime | None = None
    connected_at: datetime | None = None
    last_error: str | None = None
    last_refreshed_at: datetime | None = None
    refresh_due_at: int | None = Field(default=None, description="Epoch seconds; in the RefreshDue index.")
    consecutive_failures: int = 0
    failing_days: int = 0
    last_failure_day: str | None = None
    # Bumped by every connection, disconnection and client change: links and states minted under an
    # older generation are dead, so a stray link can never re-bind a subscription.
    connect_generation: int = 0
    reconnected_at: datetime | None = None
    reconnected_from: str | None = Field(default=None, description="Data centre of the replaced connection.")
    # Moved to a version that asks for other scopes: the tokens still work, with the old scopes, until a
    # person connects it again (cleared by the next connection).
    reconnect_required: bool = False
    organization: BoundOrganization | None = None
    # Why the last connection's verification call failed (the connection was stored all the same).
    organization_check_error: str | None = None
    created_at: datetime
    updated_at: datetime


class PendingRevocation(BrokerModel):
    """A refresh token the broker has let go of but Zoho has not yet confirmed revoking."""

    refresh_token: str
    data_centre: str

    def __repr__(self) -> str:
        return f"PendingRevocation(data_centre={self.data_centre!r})"

    __str__ = __repr__


class SubscriptionSecret(BrokerModel):
    """The JSON held in a subscription's secret: what consumers read straight from Secrets Manager."""

    model_config = ConfigDict(extra="ignore")

    client_id: str
    client_secret: str
    client_secrets_by_data_centre: dict[str, str] = Field(default_factory=dict)
    refresh_token: str | None = None
    access_token: str | None = None
    access_token_expires_at: datetime | None = None
    api_domain: str | None = None
    data_centre: str | None = None
    token_type: str | None = None
    pending_revocations: list[PendingRevocation] = Field(default_factory=list)

    def client_secret_for(self, data_centre: str) -> str:
        return self.client_secrets_by_data_centre.get(data_centre, self.client_secret)

    def __repr__(self) -> str:  # keep secrets out of tracebacks and debug logs
        return f"SubscriptionSecret(client_id={self.client_id!r}, ...)"

    __str__ = __repr__


class MaskedTokens(BrokerModel):
    access_token: str | None
    refresh_token: str | None


class SubscriptionView(BrokerModel):
    """A subscription as the admin API shows it: status and masked secrets."""

    subscription_id: str
    name: str
    integration: str
    version: str
    client_id: str
    client_secret: str | None = Field(description="Masked: first characters and length.")
    api_url: str
    throttling: Throttling
    custom_fields: dict[str, str]
    status: ConnectionStatus
    data_centre: str | None
    api_domain: str | None
    access_token_expires_at: datetime | None
    connected_at: datetime | None
    last_error: str | None
    last_refreshed_at: datetime | None
    next_refresh_at: datetime | None
    failing_days: int
    reconnected_at: datetime | None
    reconnected_from: str | None
    reconnect_required: bool = Field(
        description="Moved to a version with other scopes: send a connect link so the new scopes are granted."
    )
    organization: BoundOrganization | None = Field(
        description="The Zoho organization the subscription is bound to (its verification call named it)."
    )
    organization_check_error: str | None = Field(
        description="Why the last connection could not be verified; the connection was kept."
    )
    tokens: MaskedTokens | None = Field(description="Masked; only on single reads.")
    revocation_pending: bool | None = Field(
        description="A refresh token the broker let go of awaits revocation at Zoho (the refresher retries); "
        "only on single reads."
    )
    secret_name: str = Field(description="Secrets Manager secret holding the tokens.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def build(
        cls, subscription: Subscription, *, secret_name: str, secret: SubscriptionSecret | None
    ) -> SubscriptionView:
        data: dict[str, Any] = subscription.model_dump()
        data["secret_name"] = secret_name
        due = subscription.refresh_due_at
        data["next_refresh_at"] = datetime.fromtimestamp(due, UTC) if due is not None else None
        data["client_secret"] = mask(secret.client_secret) if secret else None
        data["revocation_pending"] = bool(secret.pending_revocations) if secret else None
        data["tokens"] = (
            MaskedTokens(access_token=mask(secret.access_token), refresh_token=mask(secret.refresh_token))
            if secret
            else None
        )
        return cls.model_validate(data)


class SubscriptionList(BrokerModel):
    subscriptions: list[SubscriptionView]
    next_cursor: str | None = None


class ConnectLink(BrokerModel):
    url: str
    expires_at: datetime
    subscription_id: str


class FieldProblem(BrokerModel):
    field: str = Field(description="Where: path.<name>, query.<name> or body.<field>.")
    message: str


class ErrorBody(BrokerModel):
    """Every error answer of the admin API."""

    error: str = Field(
        description="invalid_request, not_found, method_not_allowed, conflict, not_connected, "
        "needs_reauthentication, secret_unreadable, payload_too_large, unsupported_media_type, "
        "zoho_error, busy or service_unavailable."
    )
    message: str = Field(description="What went wrong and what to do about it; never a secret.")
    details: list[FieldProblem] = Field(
        default_factory=list, description="The invalid parameters and fields (invalid_request only)."
    )


class ConnectLinkRecord(BrokerModel):
    """A connect link as stored (keyed by the hash of its token, so a table reader cannot use it)."""

    subscription_id: str
    expires_at: int = Field(description="Epoch seconds; also the table's TTL attribute.")
    generation: int = Field(default=0, description="The subscription's connect_generation when issued.")


class StateRecord(BrokerModel):
    """One consent attempt, stored under its nonce until the callback consumes it."""

    subscription_id: str
    binding_hash: str = Field(description="SHA-256 of the browser-binding cookie, never the cookie.")
    redirect_uri: str
    expires_at: int = Field(description="Epoch seconds; also the table's TTL attribute.")
    generation: int = 0
    # The connect link that started it, given back when the consent fails for a passing reason.
    link_hash: str | None = None
    link_expires_at: int | None = None
    # Where the code is exchanged, as the version said when the consent started: an edit of the version
    # meanwhile applies to the next consent, not this one.
    token_path: str | None = None


class AccessToken(BrokerModel):
    """What a consumer gets from the token route: a token valid for at least a few minutes."""

    subscription_id: str
    access_token: str
    token_type: str
    api_domain: str | None
    data_centre: str | None
    expires_at: datetime

    @classmethod
    def of(cls, subscription_id: str, secret: SubscriptionSecret | None) -> AccessToken:
        """The secret's access token as a consumer gets it; the secret must hold one."""
        assert secret is not None and secret.access_token and secret.access_token_expires_at
        return cls(
            subscription_id=subscription_id,
            access_token=secret.access_token,
            token_type=secret.token_type or "Bearer",
            api_domain=secret.api_domain,
            data_centre=secret.data_centre,
            expires_at=secret.access_token_expires_at,
        )


class RefreshResult(StrEnum):
    REFRESHED = "refreshed"
    ALREADY_FRESH = "already_fresh"
    BUSY = "busy"
    SKIPPED = "skipped"
    FAILED = "failed"
    NEEDS_REAUTHENTICATION = "needs_reauthentication"
    # A queued message for a subscription that is not due (re-delivered, or in backoff): nothing done.
    NOT_DUE = "not_due"
    # The secret-write budget or Secrets Manager's throttling held the write back: retried soon,
    # not a failure.
    DEFERRED = "deferred"
    # The lease ran out before the result was recorded; whoever holds it now finishes the work.
    LEASE_LOST = "lease_lost"


class RefreshOutcome(BrokerModel):
    subscription_id: str
    result: RefreshResult
    access_token_expires_at: datetime | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None


# ------------------------------------------------------------------------------------------------
# Integrations and their versions, as the admin API takes and shows them.

IntegrationId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,63}$")]


class IntegrationCreate(BrokerModel):
    """Body of POST /admin/integrations: a new integration with its first version."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: IntegrationId
    name: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")
    description: str = Field(default="", max_length=4000)
    version: IntegrationVersionFields


class IntegrationVersionUpdate(PartialUpdate):
    """Body of PATCH /admin/integrations/{integration}/versions/{version}: the fields given change.

    The result is validated as a whole, as a new version would be.
    """

    authorization_type: AuthorizationType | None = None
    oauth_url_template: str | None = Field(default=None, min_length=1, max_length=4096)
    token_path: str | None = Field(default=None, pattern=r"^/[A-Za-z0-9/._-]{0,200}$")
    revoke_path: str | None = Field(default=None, pattern=r"^/[A-Za-z0-9/._-]{0,200}$")
    default_scopes: list[str] | None = Field(default=None, min_length=1, max_length=100)
    default_api_url: str | None = Field(
        default=None, min_length=1, max_length=2048, pattern=r"^https://[^\s]+$"
    )
    custom_fields: list[CustomField] | None = Field(default=None, max_length=50)
    default_throttling: Throttling | None = None
    verification: Verification | None = Field(default=None, description="null removes it (no binding).")
    api_headers: dict[HeaderName, ApiValueTemplate] | None = Field(default=None, max_length=20)
    api_query_parameters: dict[ParameterName, ApiValueTemplate] | None = Field(default=None, max_length=20)
    paging: Paging | None = Field(default=None, description="null: the API does not page.")

    nullable_fields: ClassVar[frozenset[str]] = frozenset({"verification", "paging"})


class IntegrationView(BrokerModel):
    """An integration as the admin API shows it."""

    id: str
    name: str
    description: str
    versions: list[IntegrationVersion]
    built_in: bool = Field(description="It ships with the broker (integrations.json).")
    customised: bool = Field(
        description="An operator changed it: the stored copy replaces the built-in as a whole."
    )
    revision: int = Field(description="Bumped by every change; 0 while it is the packaged built-in.")


class IntegrationList(BrokerModel):
    integrations: list[IntegrationView]

"""Settings parsed once from the environment (the template's Globals set them).

Each field is read from the variable BROKER_<FIELD NAME>, so adding a setting is one field here and one
variable in template.yaml's Globals (tests/unit/test_config.py checks that the two agree).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from zoho_broker.data_centres import ZOHO_ACCOUNTS_SERVERS

ENVIRONMENT_PREFIX = "BROKER_"


def variable_name(field: str) -> str:
    """The environment variable a setting is read from."""
    return ENVIRONMENT_PREFIX + field.upper()


class Settings(BaseModel):
    model_config = ConfigDict(alias_generator=variable_name, populate_by_name=True)

    subscriptions_table: str = Field(min_length=1)
    flows_table: str = Field(min_length=1)
    secret_prefix: str = Field(min_length=1)
    state_key_secret_id: str = Field(min_length=1)
    public_base_url: str = ""
    zoho_accounts_servers: dict[str, str] = Field(default_factory=lambda: dict(ZOHO_ACCOUNTS_SERVERS))
    state_ttl_seconds: int = Field(default=600, ge=60, le=3600)
    connect_link_ttl_seconds: int = Field(default=86400, ge=60, le=604800)
    # Deployed stacks serve https only. The local runner turns it off: browsers keep Secure cookies on
    # http://127.0.0.1, but command-line clients (curl, httpx) do not send them over plain http.
    cookie_secure: bool = True
    stage: str = "dev"
    zoho_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # The refresher: refresh when the access token expires within this margin.
    refresh_margin_seconds: int = Field(default=900, ge=60, le=3000)
    # At most this many due subscriptions are refreshed inside the scheduled run; more go to the queue.
    refresh_inline_limit: int = Field(default=10, ge=0, le=1000)
    refresh_queue_url: str = ""
    # Days with failed refreshes (transient ones) before a subscription needs re-authentication.
    max_failing_days: int = Field(default=3, ge=1, le=30)
    retry_base_seconds: int = Field(default=60, ge=1, le=3600)
    retry_cap_seconds: int = Field(default=3600, ge=60, le=86400)
    # Secret writes per second for the whole region, shared by every refresher through the counters in
    # this table (empty: unpaced). Secrets Manager's own limit is 50 for all writers in the region.
    write_budget_table: str = ""
    secret_writes_per_second: int = Field(default=40, ge=1, le=50)
    event_bus_name: str = "default"
    # Only the local runner sets it: the Connected page links back to its console when the flow began there.
    console_url: str = ""
    # The proxy's throttle (shared by every ProxyFunction instance) and how long a call's concurrency
    # slot lives if its Lambda dies before releasing it (longer than the function's timeout).
    throttle_table: str = ""
    proxy_slot_seconds: float = Field(default=70.0, ge=0.1, le=900)

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("zoho_accounts_servers", mode="before")
    @classmethod
    def _parse_servers(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return dict(ZOHO_ACCOUNTS_SERVERS)
            return json.loads(value)
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from BROKER_* variables; an empty variable counts as unset (its default applies)."""
        env = os.environ if env is None else env
        raw = {name: value for name, value in env.items() if name.startswith(ENVIRONMENT_PREFIX) and value}
        try:
            return cls.model_validate(raw)
        except (ValidationError, json.JSONDecodeError) as error:
            raise RuntimeError(f"The broker's environment is incomplete or invalid: {error}") from error


@cache
def get_settings() -> Settings:
    return Settings.from_env()

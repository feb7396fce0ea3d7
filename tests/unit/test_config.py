"""Settings: one pydantic model whose fields are the BROKER_* variables, agreeing with template.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from broker_local.template import load_template
from zoho_broker.config import Settings, variable_name

ROOT = Path(__file__).resolve().parents[2]
# Settings the template does not set, each with why: they keep their defaults when deployed.
NOT_IN_TEMPLATE = {
    "cookie_secure": "the local runner turns it off for plain http; deployed stacks serve https only",
    "zoho_timeout_seconds": "a tunable for tests and emergencies; 10 s suits Zoho",
    "retry_base_seconds": "the backoff's first step, shortened by tests",
    "retry_cap_seconds": "the backoff's ceiling, shortened by tests",
    "console_url": "only the local runner has a console for the Connected page to link back to",
}


def _template_variables() -> dict[str, Any]:
    """Every variable the template gives a function: Globals plus each function's own."""
    template = load_template(ROOT / "template.yaml")
    variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            variables.update(((resource["Properties"].get("Environment") or {}).get("Variables")) or {})
    return variables


def test_every_broker_variable_of_the_template_is_a_setting() -> None:
    fields = {variable_name(name) for name in Settings.model_fields}

    broker_variables = {name for name in _template_variables() if name.startswith("BROKER_")}

    assert broker_variables - fields == set(), "template variables no setting reads"


def test_every_setting_is_set_by_the_template_unless_it_says_why_not() -> None:
    variables = _template_variables()

    missing = {name for name in Settings.model_fields if variable_name(name) not in variables}

    assert missing == set(NOT_IN_TEMPLATE)


def test_env_json_sets_exactly_the_template_variables() -> None:
    parameters = json.loads((ROOT / "env.json").read_text())["Parameters"]

    assert set(parameters) == set(_template_variables())


def test_each_setting_is_read_from_its_own_variable() -> None:
    env = {
        "BROKER_SUBSCRIPTIONS_TABLE": "subs",
        "BROKER_FLOWS_TABLE": "flows",
        "BROKER_SECRET_PREFIX": "stack/subscriptions/",
        "BROKER_STATE_KEY_SECRET_ID": "stack/key",
        "BROKER_PUBLIC_BASE_URL": "https://broker.example/",
        "BROKER_ZOHO_ACCOUNTS_SERVERS": '{"us": "https://accounts.zoho.com"}',
        "BROKER_REFRESH_INLINE_LIMIT": "7",
        "BROKER_COOKIE_SECURE": "false",
        "BROKER_SECRET_WRITES_PER_SECOND": "",  # empty counts as unset
        "OTHER_VARIABLE": "ignored",
    }

    settings = Settings.from_env(env)

    assert settings.subscriptions_table == "subs"
    assert settings.secret_prefix == "stack/subscriptions/"
    assert settings.public_base_url == "https://broker.example"
    assert settings.zoho_accounts_servers == {"us": "https://accounts.zoho.com"}
    assert settings.refresh_inline_limit == 7
    assert settings.cookie_secure is False
    assert settings.secret_writes_per_second == 40


def test_a_missing_or_invalid_variable_is_named() -> None:
    with pytest.raises(RuntimeError, match="BROKER_FLOWS_TABLE"):
        Settings.from_env(
            {
                "BROKER_SUBSCRIPTIONS_TABLE": "s",
                "BROKER_SECRET_PREFIX": "p",
                "BROKER_STATE_KEY_SECRET_ID": "k",
            }
        )
    with pytest.raises(RuntimeError, match="BROKER_STATE_TTL_SECONDS"):
        Settings.from_env(
            {
                "BROKER_SUBSCRIPTIONS_TABLE": "s",
                "BROKER_FLOWS_TABLE": "f",
                "BROKER_SECRET_PREFIX": "p",
                "BROKER_STATE_KEY_SECRET_ID": "k",
                "BROKER_STATE_TTL_SECONDS": "5",
            }
        )

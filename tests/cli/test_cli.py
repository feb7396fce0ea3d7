"""The `broker` admin command-line tool against the real local runner: a moto server provisioned from
template.yaml, the Lambda handlers behind the local gateway, and the Zoho stand-in over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
from running import CLIENT_SECRET, MASKED_SECRET, Broker, Cli, Terminal, closed_port, create_subscription

from tests.integration.flow import decide_at_zoho, open_link
from tests.whoami import whoami
from zoho_broker.services import get_services

CONSOLE_SCRIPT = Path(sys.executable).with_name("broker")


# --------------------------------------------------------------------------------------------------
# Subscriptions


def test_a_secret_on_stdin_is_stored_and_never_printed(cli: Cli) -> None:
    ran = cli(
        "subscriptions",
        "create",
        "--name",
        "Stdin Secret CRM",
        "--integration",
        "zoho-crm",
        "--client-id",
        "1000.CLICLIENT0123456789",
        "--client-secret-stdin",
        "--custom-field",
        "RedirectUrl=https://portal.example.com/cb",
        "--requests-per-minute",
        "30",
        "--max-concurrent-requests",
        "3",
        stdin=CLIENT_SECRET + "\n",
    )

    assert ran.code == 0, ran.err
    assert "Stdin Secret CRM" in ran.out
    assert MASKED_SECRET in ran.out
    assert "30 requests/minute, 3 concurrent" in ran.out
    assert "RedirectUrl=https://portal.example.com/cb" in ran.out
    assert "broker connect-link sub_" in ran.err
    assert CLIENT_SECRET not in ran.out + ran.err


def test_a_secret_given_as_an_argument_is_not_echoed(cli: Cli) -> None:
    ran = cli(
        "--json",
        "subscriptions",
        "create",
        "--name",
        f"Argument Secret {uuid.uuid4().hex[:8]}",
        "--integration",
        "zoho-crm",
        "--client-id",
        "1000.CLICLIENT0123456789",
        "--client-secret",
        CLIENT_SECRET,
    )

    assert ran.code == 0, ran.err
    assert ran.json()["client_secret"] == MASKED_SECRET
    assert CLIENT_SECRET not in ran.out + ran.err


def test_listing_shows_a_table(cli: Cli) -> None:
    created = create_subscription(cli)

    ran = cli("subscriptions", "list", "--limit", "100")

    assert ran.code == 0, ran.err
    header, *rows = ran.out.splitlines()
    assert header.split() == ["ID", "NAME", "INTEGRATION", "STATUS", "DATA", "CENTRE", "EXPIRES"]
    row = next(line for line in rows if line.startswith(created["subscription_id"]))
    assert created["name"] in row and "zoho-crm" in row and "not_connected" in row


def test_listing_as_json_prints_the_apis_answer(cli: Cli) -> None:
    created = create_subscription(cli)

    ran = cli("subscriptions", "list", "--limit", "100", "--json")

    assert ran.code == 0, ran.err
    answer = ran.json()
    assert set(answer) == {"subscriptions", "next_cursor"}
    assert created["subscription_id"] in [s["subscription_id"] for s in answer["subscriptions"]]


def test_listing_all_follows_every_page(cli: Cli) -> None:
    ids = {create_subscription(cli)["subscription_id"] for _ in range(3)}

    one_page = cli("subscriptions", "list", "--limit", "1", "--json").json()
    everything = cli("subscriptions", "list", "--limit", "1", "--all", "--json").json()

    assert len(one_page["subscriptions"]) == 1 and one_page["next_cursor"]
    assert everything["next_cursor"] is None
    assert ids <= {s["subscription_id"] for s in everything["subscriptions"]}


def test_show_masks_the_secret(cli: Cli) -> None:
    created = create_subscription(cli)

    ran = cli("subscriptions", "show", created["subscription_id"])

    assert ran.code == 0, ran.err
    assert created["subscription_id"] in ran.out
    assert MASKED_SECRET in ran.out
    assert CLIENT_SECRET not in ran.out + ran.err
    assert "not_connected" in ran.out


def test_show_as_json_masks_the_secret(cli: Cli) -> None:
    created = create_subscription(cli)

    ran = cli("subscriptions", "show", created["subscription_id"], "--json")

    assert ran.code == 0, ran.err
    assert ran.json()["client_secret"] == MASKED_SECRET
    assert CLIENT_SECRET not in ran.out


def test_update_sets_new_settings(cli: Cli) -> None:
    created = create_subscription(cli)
    new_name = f"Renamed {uuid.uuid4().hex[:8]}"

    ran = cli(
        "subscriptions",
        "update",
        created["subscription_id"],
        "--name",
        new_name,
        "--requests-per-minute",
        "20",
        "--max-concurrent-requests",
        "2",
        "--json",
    )
    shown = cli("subscriptions", "show", created["subscription_id"], "--json").json()

    assert ran.code == 0, ran.err
    assert shown["name"] == new_name
    assert shown["throttling"] == {"requests_per_minute": 20, "max_concurrent_requests": 2}


def test_a_new_secret_on_stdin_changes_the_masked_secret(cli: Cli) -> None:
    created = create_subscription(cli)
    new_secret = "another-secret-abcdefghijklmnop"

    ran = cli(
        "subscriptions", "update", created["subscription_id"], "--client-secret-stdin", stdin=new_secret
    )

    assert ran.code == 0, ran.err
    assert f"anot…({len(new_secret)} chars)" in ran.out
    assert new_secret not in ran.out + ran.err


def test_an_update_with_nothing_to_change_is_a_usage_error(cli: Cli) -> None:
    created = create_subscription(cli)

    ran = cli("subscriptions", "update", created["subscription_id"])

    assert ran.code == 2
    assert "nothing to update" in ran.err


def test_delete_with_yes_removes_the_subscription(cli: Cli) -> None:
    created = create_subscription(cli)

    ran = cli("subscriptions", "delete", created["subscription_id"], "--yes")
    shown = cli("subscriptions", "show", created["subscription_id"])

    assert ran.code == 0, ran.err
    assert f"Deleted {created['subscription_id']}" in ran.out
    assert shown.code == 1
    assert "(not_found, HTTP 404)" in shown.err


def test_delete_without_yes_or_a_terminal_refuses(cli: Cli) -> None:
    created = create_subscription(cli)

    ran = cli("subscriptions", "delete", created["subscription_id"])
    shown = cli("subscriptions", "show", created["subscription_id"])

    assert ran.code == 2
    assert "refusing to delete" in ran.err and "--yes" in ran.err
    assert shown.code == 0


def test_a_confirmed_delete_deletes(cli: Cli) -> None:
    created = create_subscription(cli)

    ran = cli("subscriptions", "delete", created["subscription_id"], stdin=Terminal("y\n"))

    assert ran.code == 0, ran.err
    assert created["name"] in ran.err and "[y/N]" in ran.err


def test_a_declined_delete_changes_nothing(cli: Cli) -> None:
    created = create_subscription(cli)

    ran = cli("subscriptions", "delete", created["subscription_id"], stdin=Terminal("n\n"))
    shown = cli("subscriptions", "show", created["subscription_id"])

    assert ran.code == 1
    assert "aborted" in ran.err
    assert shown.code == 0


def test_integrations_lists_both_products(cli: Cli) -> None:
    ran = cli("integrations")

    assert ran.code == 0, ran.err
    assert "zoho-crm" in ran.out and "zoho-commerce" in ran.out
    assert "OrganizationId (required)" in ran.out


def _version_file(tmp_path: Path, **fields: Any) -> str:
    path = tmp_path / "version.json"
    path.write_text(
        json.dumps(
            {
                "default_scopes": ["ZohoCRM.modules.ALL"],
                "default_api_url": "https://www.zohoapis.com/crm/v8",
                "default_throttling": {"requests_per_minute": 100, "max_concurrent_requests": 10},
                **fields,
            }
        )
    )
    return str(path)


def test_managing_an_integration_from_a_version_file_shows_each_step(cli: Cli, tmp_path: Path) -> None:
    integration = f"crm-{uuid.uuid4().hex[:8]}"
    template = (
        "https://accounts.zoho.com/oauth/v2/auth?scope={Scopes}&client_id={Client_Id}&response_type=code"
        "&redirect_uri={SystemTypeVersion:RedirectUrl}&access_type=offline&state={iPaaSState}"
    )
    created = cli(
        "integrations",
        "create",
        integration,
        "--name",
        "CRM sandbox",
        "--version",
        "1",
        "--file",
        _version_file(tmp_path, custom_fields=[{"name": "RedirectUrl"}]),
        "--oauth-url-template",
        template,
    )
    bad = cli(
        "versions",
        "add",
        integration,
        "2",
        "--file",
        _version_file(tmp_path),
        "--oauth-url-template",
        template.replace("response_type=code", "response_type=token"),
    )
    added = cli(
        "--json",
        "versions",
        "add",
        integration,
        "2",
        "--file",
        "-",
        stdin=Path(
            _version_file(tmp_path, custom_fields=[{"name": "RedirectUrl"}], oauth_url_template=template)
        ).read_text(),
    )
    updated = cli(
        "versions", "update", integration, "2", "--default-api-url", "https://www.zohoapis.eu/crm/v8"
    )
    shown = cli("integrations", "show", integration)
    deleted = cli("versions", "delete", integration, "2", "--yes")
    gone = cli("versions", "show", integration, "2")

    assert created.code == 0, created.err
    assert integration in created.out and "Changed by" in created.out
    assert bad.code == 1 and "response_type=code (it has token)" in bad.err
    assert added.code == 0 and added.json()["version"] == "2"
    assert updated.code == 0 and "https://www.zohoapis.eu/crm/v8" in updated.out
    assert shown.code == 0 and "1, 2" in shown.out and template in shown.out
    assert deleted.code == 0 and "Deleted version 2" in deleted.out
    assert gone.code == 1 and "no version '2'" in gone.err


def test_a_self_client_grant_code_connects_and_is_never_printed(
    cli: Cli, broker: Broker, tmp_path: Path
) -> None:
    integration = f"own-{uuid.uuid4().hex[:8]}"
    assert (
        cli(
            "integrations",
            "create",
            integration,
            "--name",
            "Own CRM",
            "--version",
            "1",
            "--authorization-type",
            "self_client",
            "--file",
            _version_file(tmp_path),
        ).code
        == 0
    )
    created = create_subscription(cli, "--integration", integration)
    code = broker.zoho.issue_self_client_code(
        client_id="1000.CLICLIENT0123456789", scope="ZohoCRM.modules.ALL", data_centre="eu"
    )

    wrong = cli("grant-code", created["subscription_id"], "--data-centre", "us", stdin=code + "\n")
    ran = cli("grant-code", created["subscription_id"], "--data-centre", "eu", stdin=code + "\n")

    assert wrong.code == 1 and "not generated in the US data centre" in wrong.err
    assert ran.code == 0, ran.err
    assert f"Connected {created['subscription_id']} (eu): status connected." in ran.out
    assert code not in wrong.out + wrong.err + ran.out + ran.err


# --------------------------------------------------------------------------------------------------
# Connect links and tokens


def test_connect_link_prints_a_url_on_the_runner(cli: Cli, broker: Broker) -> None:
    created = create_subscription(cli)

    ran = cli("connect-link", created["subscription_id"])

    assert ran.code == 0, ran.err
    assert ran.out.strip().startswith(f"{broker.url}/connect/")
    assert len(ran.out.strip().splitlines()) == 1


def test_a_token_for_an_unconnected_subscription_explains_the_409(
    cli: Cli,
) -> None:
    created = create_subscription(cli)

    ran = cli("token", created["subscription_id"])

    assert ran.code == 1
    assert ran.out == ""
    assert ran.err.startswith("broker: error: The subscription is not connected yet")
    assert "(not_connected, HTTP 409)" in ran.err


def test_refreshing_an_unconnected_subscription_says_so(cli: Cli) -> None:
    created = create_subscription(cli)

    ran = cli("refresh", created["subscription_id"])

    assert ran.code == 1
    assert "no refresh token" in ran.err and "HTTP 409" in ran.err


def test_revoke_with_yes_disconnects(cli: Cli) -> None:
    created = create_subscription(cli)

    ran = cli("revoke", created["subscription_id"], "--yes")

    assert ran.code == 0, ran.err
    assert f"Disconnected {created['subscription_id']}: status not_connected" in ran.out


def test_revoke_without_yes_or_a_terminal_refuses(cli: Cli) -> None:
    created = create_subscription(cli)

    ran = cli("revoke", created["subscription_id"])

    assert ran.code == 2
    assert "refusing to revoke" in ran.err


def test_the_token_after_consent_works_at_zoho(cli: Cli, broker: Broker) -> None:
    created = create_subscription(cli)
    subscription_id = created["subscription_id"]
    link = cli("connect-link", subscription_id).out.strip()

    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        started = open_link(browser, link)
        assert started.status_code == 302, started.text
        callback_url = decide_at_zoho(browser, started.headers["location"], data_centre="eu")
        connected = browser.get(callback_url)
    assert connected.status_code == 200, connected.text

    ran = cli("token", subscription_id)
    token = ran.out.strip()
    works = whoami(broker.accounts_servers["eu"], token)
    shown = cli("subscriptions", "show", subscription_id)
    refreshed = cli("refresh", subscription_id)

    assert ran.code == 0, ran.err
    assert ran.out == token + "\n"
    assert works.status_code == 200, works.text
    assert works.json()["data_centre"] == "eu"
    assert "connected" in shown.out and token not in shown.out
    assert refreshed.code == 0, refreshed.err
    assert "refreshed" in refreshed.out and token not in refreshed.out


def test_token_as_json_prints_the_document(
    cli: Cli,
) -> None:
    created = create_subscription(cli)
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        started = open_link(browser, cli("connect-link", created["subscription_id"]).out.strip())
        assert browser.get(decide_at_zoho(browser, started.headers["location"])).status_code == 200

    ran = cli("token", created["subscription_id"], "--json")

    assert ran.code == 0, ran.err
    document = ran.json()
    assert document["subscription_id"] == created["subscription_id"]
    secret = get_services().secrets.get(created["subscription_id"])
    assert secret is not None
    assert (document["access_token"], document["data_centre"]) == (secret.access_token, "us")


# --------------------------------------------------------------------------------------------------
# The installed console script


def test_the_installed_console_script_creates_and_lists(broker: Broker) -> None:
    assert CONSOLE_SCRIPT.exists(), f"{CONSOLE_SCRIPT} is missing: run `make .venv/bin/.installed`"
    env = {**os.environ, "BROKER_URL": broker.url}
    name = f"Console script {uuid.uuid4().hex[:8]}"

    created = subprocess.run(
        [
            str(CONSOLE_SCRIPT),
            *("subscriptions", "create", "--name", name, "--integration", "zoho-crm"),
            *("--client-id", "1000.CLICLIENT0123456789", "--client-secret-stdin", "--json"),
        ],
        input=CLIENT_SECRET,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    listed = subprocess.run(
        [CONSOLE_SCRIPT, "subscriptions", "list", "--all"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert created.returncode == 0, created.stderr
    assert CLIENT_SECRET not in created.stdout + created.stderr
    assert json.loads(created.stdout)["name"] == name
    assert listed.returncode == 0, listed.stderr
    assert name in listed.stdout


def test_the_installed_console_script_exits_3_when_the_broker_is_down() -> None:
    url = f"http://127.0.0.1:{closed_port()}"

    ran = subprocess.run(
        [CONSOLE_SCRIPT, "--url", url, "integrations"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert ran.returncode == 3
    assert ran.stderr.startswith(f"broker: error: cannot reach the broker at {url}: ")

"""The `broker` admin command-line tool against the real local runner: a moto server provisioned from
template.yaml, the Lambda handlers behind the local gateway, and the Zoho stand-in over HTTP."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker_cli.signing import SigV4, should_sign, sigv4_for
from broker_local.runner import free_port
from tests.cli.conftest import Broker, Cli
from tests.integration.flow import decide_at_zoho, open_link

CLIENT_SECRET = "cli-client-secret-0123456789abcdef"
MASKED_SECRET = f"cli-…({len(CLIENT_SECRET)} chars)"
CONSOLE_SCRIPT = Path(sys.executable).with_name("broker")


class _Terminal(io.StringIO):
    """Standard input as if a person sat at a terminal, with these lines typed."""

    def isatty(self) -> bool:
        return True


def _create(cli: Cli, *extra: str, name: str | None = None) -> dict[str, Any]:
    name = name or f"Acme CRM {uuid.uuid4().hex[:8]}"
    ran = cli(
        "--json",
        "subscriptions",
        "create",
        "--name",
        name,
        "--integration",
        "zoho-crm",
        "--client-id",
        "1000.CLICLIENT0123456789",
        "--client-secret-stdin",
        *extra,
        stdin=CLIENT_SECRET + "\n",
    )
    assert ran.code == 0, ran.err
    created: dict[str, Any] = ran.json()
    return created


def _closed_port() -> int:
    return free_port("127.0.0.1")  # bound and released: nothing listens there


# --------------------------------------------------------------------------------------------------
# Subscriptions


def test_given_the_secret_on_stdin_when_creating_then_it_is_stored_and_never_printed(cli: Cli) -> None:
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


def test_given_the_secret_as_an_argument_when_creating_then_it_is_not_echoed(cli: Cli) -> None:
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


def test_given_subscriptions_when_listing_then_a_table_shows_them(cli: Cli) -> None:
    created = _create(cli)

    ran = cli("subscriptions", "list", "--limit", "100")

    assert ran.code == 0, ran.err
    header, *rows = ran.out.splitlines()
    assert header.split() == ["ID", "NAME", "INTEGRATION", "STATUS", "DATA", "CENTRE", "EXPIRES"]
    row = next(line for line in rows if line.startswith(created["subscription_id"]))
    assert created["name"] in row and "zoho-crm" in row and "not_connected" in row


def test_given_subscriptions_when_listing_as_json_then_the_apis_answer_is_printed(cli: Cli) -> None:
    created = _create(cli)

    ran = cli("subscriptions", "list", "--limit", "100", "--json")

    assert ran.code == 0, ran.err
    answer = ran.json()
    assert set(answer) == {"subscriptions", "next_cursor"}
    assert created["subscription_id"] in [s["subscription_id"] for s in answer["subscriptions"]]


def test_given_several_pages_when_listing_all_then_every_page_is_followed(cli: Cli) -> None:
    ids = {_create(cli)["subscription_id"] for _ in range(3)}

    one_page = cli("subscriptions", "list", "--limit", "1", "--json").json()
    everything = cli("subscriptions", "list", "--limit", "1", "--all", "--json").json()

    assert len(one_page["subscriptions"]) == 1 and one_page["next_cursor"]
    assert everything["next_cursor"] is None
    assert ids <= {s["subscription_id"] for s in everything["subscriptions"]}


def test_given_a_subscription_when_shown_then_the_secret_is_masked(cli: Cli) -> None:
    created = _create(cli)

    ran = cli("subscriptions", "show", created["subscription_id"])

    assert ran.code == 0, ran.err
    assert created["subscription_id"] in ran.out
    assert MASKED_SECRET in ran.out
    assert CLIENT_SECRET not in ran.out + ran.err
    assert "not_connected" in ran.out


def test_given_a_subscription_when_shown_as_json_then_the_secret_is_masked(cli: Cli) -> None:
    created = _create(cli)

    ran = cli("subscriptions", "show", created["subscription_id"], "--json")

    assert ran.code == 0, ran.err
    assert ran.json()["client_secret"] == MASKED_SECRET
    assert CLIENT_SECRET not in ran.out


def test_given_new_settings_when_updating_then_the_subscription_has_them(cli: Cli) -> None:
    created = _create(cli)
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


def test_given_a_new_secret_on_stdin_when_updating_then_the_masked_secret_changes(cli: Cli) -> None:
    created = _create(cli)
    new_secret = "another-secret-abcdefghijklmnop"

    ran = cli(
        "subscriptions", "update", created["subscription_id"], "--client-secret-stdin", stdin=new_secret
    )

    assert ran.code == 0, ran.err
    assert f"anot…({len(new_secret)} chars)" in ran.out
    assert new_secret not in ran.out + ran.err


def test_given_nothing_to_change_when_updating_then_it_is_a_usage_error(cli: Cli) -> None:
    created = _create(cli)

    ran = cli("subscriptions", "update", created["subscription_id"])

    assert ran.code == 2
    assert "nothing to update" in ran.err


def test_given_a_subscription_when_deleting_with_yes_then_it_is_gone(cli: Cli) -> None:
    created = _create(cli)

    ran = cli("subscriptions", "delete", created["subscription_id"], "--yes")
    shown = cli("subscriptions", "show", created["subscription_id"])

    assert ran.code == 0, ran.err
    assert f"Deleted {created['subscription_id']}" in ran.out
    assert shown.code == 1
    assert "(not_found, HTTP 404)" in shown.err


def test_given_no_terminal_when_deleting_without_yes_then_it_refuses(cli: Cli) -> None:
    created = _create(cli)

    ran = cli("subscriptions", "delete", created["subscription_id"])
    shown = cli("subscriptions", "show", created["subscription_id"])

    assert ran.code == 2
    assert "refusing to delete" in ran.err and "--yes" in ran.err
    assert shown.code == 0


def test_given_a_terminal_when_the_person_confirms_then_it_is_deleted(cli: Cli) -> None:
    created = _create(cli)

    ran = cli("subscriptions", "delete", created["subscription_id"], stdin=_Terminal("y\n"))

    assert ran.code == 0, ran.err
    assert created["name"] in ran.err and "[y/N]" in ran.err


def test_given_a_terminal_when_the_person_declines_then_nothing_changes(cli: Cli) -> None:
    created = _create(cli)

    ran = cli("subscriptions", "delete", created["subscription_id"], stdin=_Terminal("n\n"))
    shown = cli("subscriptions", "show", created["subscription_id"])

    assert ran.code == 1
    assert "aborted" in ran.err
    assert shown.code == 0


def test_given_the_catalogue_when_listing_integrations_then_both_products_show(cli: Cli) -> None:
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


def test_given_a_version_file_when_managing_an_integration_then_each_step_shows_the_result(
    cli: Cli, tmp_path: Path
) -> None:
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


def test_given_a_self_client_grant_code_on_stdin_when_submitted_then_connected_and_never_printed(
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
    created = _create(cli, "--integration", integration)
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


def test_given_a_subscription_when_asking_for_a_connect_link_then_a_url_on_the_runner_is_printed(
    cli: Cli, broker: Broker
) -> None:
    created = _create(cli)

    ran = cli("connect-link", created["subscription_id"])

    assert ran.code == 0, ran.err
    assert ran.out.strip().startswith(f"{broker.url}/connect/")
    assert len(ran.out.strip().splitlines()) == 1


def test_given_a_not_connected_subscription_when_asking_for_a_token_then_a_409_is_explained(
    cli: Cli,
) -> None:
    created = _create(cli)

    ran = cli("token", created["subscription_id"])

    assert ran.code == 1
    assert ran.out == ""
    assert ran.err.startswith("broker: error: The subscription is not connected yet")
    assert "(not_connected, HTTP 409)" in ran.err


def test_given_a_not_connected_subscription_when_refreshing_then_it_says_so(cli: Cli) -> None:
    created = _create(cli)

    ran = cli("refresh", created["subscription_id"])

    assert ran.code == 1
    assert "no refresh token" in ran.err and "HTTP 409" in ran.err


def test_given_a_subscription_when_revoking_with_yes_then_it_is_disconnected(cli: Cli) -> None:
    created = _create(cli)

    ran = cli("revoke", created["subscription_id"], "--yes")

    assert ran.code == 0, ran.err
    assert f"Disconnected {created['subscription_id']}: status not_connected" in ran.out


def test_given_no_terminal_when_revoking_without_yes_then_it_refuses(cli: Cli) -> None:
    created = _create(cli)

    ran = cli("revoke", created["subscription_id"])

    assert ran.code == 2
    assert "refusing to revoke" in ran.err


def test_given_a_completed_consent_when_asking_for_a_token_then_zoho_accepts_it(
    cli: Cli, broker: Broker
) -> None:
    created = _create(cli)
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
    whoami = httpx.get(
        broker.accounts_servers["eu"] + "/standin/whoami",
        headers={"Authorization": f"Zoho-oauthtoken {token}"},
        timeout=10,
    )
    shown = cli("subscriptions", "show", subscription_id)
    refreshed = cli("refresh", subscription_id)

    assert ran.code == 0, ran.err
    assert ran.out == token + "\n"
    assert whoami.status_code == 200, whoami.text
    assert whoami.json()["data_centre"] == "eu"
    assert "connected" in shown.out and token not in shown.out
    assert refreshed.code == 0, refreshed.err
    assert "refreshed" in refreshed.out and token not in refreshed.out


def test_given_a_connected_subscription_when_asking_for_the_token_as_json_then_the_document_prints(
    cli: Cli,
) -> None:
    created = _create(cli)
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        started = open_link(browser, cli("connect-link", created["subscription_id"]).out.strip())
        assert browser.get(decide_at_zoho(browser, started.headers["location"])).status_code == 200

    ran = cli("token", created["subscription_id"], "--json")

    assert ran.code == 0, ran.err
    document = ran.json()
    assert document["subscription_id"] == created["subscription_id"]
    assert document["access_token"] and document["data_centre"] == "us"


# --------------------------------------------------------------------------------------------------
# Bad arguments, API errors, unreachable servers, signing


def test_given_no_name_when_creating_then_argparse_exits_2(cli: Cli) -> None:
    ran = cli(
        "subscriptions",
        "create",
        "--integration",
        "zoho-crm",
        "--client-id",
        "1000.X",
        "--client-secret-stdin",
        stdin=CLIENT_SECRET,
    )

    assert ran.code == 2
    assert "--name" in ran.err


def test_given_a_malformed_custom_field_when_creating_then_argparse_exits_2(cli: Cli) -> None:
    ran = cli(
        "subscriptions",
        "create",
        "--name",
        "Malformed",
        "--integration",
        "zoho-crm",
        "--client-id",
        "1000.X",
        "--client-secret-stdin",
        "--custom-field",
        "RedirectUrl",
        stdin=CLIENT_SECRET,
    )

    assert ran.code == 2
    assert "expected KEY=VALUE" in ran.err


def test_given_half_the_throttling_when_creating_then_it_is_a_usage_error(cli: Cli) -> None:
    ran = cli(
        "subscriptions",
        "create",
        "--name",
        "Half throttled",
        "--integration",
        "zoho-crm",
        "--client-id",
        "1000.X",
        "--client-secret-stdin",
        "--requests-per-minute",
        "10",
        stdin=CLIENT_SECRET,
    )

    assert ran.code == 2
    assert "--max-concurrent-requests" in ran.err


def test_given_an_id_with_a_slash_when_showing_then_argparse_exits_2(cli: Cli) -> None:
    ran = cli("subscriptions", "show", "../integrations")

    assert ran.code == 2
    assert "not a subscription id" in ran.err


def test_given_an_unknown_integration_when_creating_then_the_apis_message_is_shown(cli: Cli) -> None:
    ran = cli(
        "subscriptions",
        "create",
        "--name",
        "Unknown integration",
        "--integration",
        "zoho-nope",
        "--client-id",
        "1000.X",
        "--client-secret-stdin",
        stdin=CLIENT_SECRET,
    )

    assert ran.code == 1
    assert ran.err.startswith("broker: error: Unknown integration 'zoho-nope'")
    assert "(invalid_request, HTTP 400)" in ran.err
    assert CLIENT_SECRET not in ran.err


def test_given_an_invalid_field_when_creating_then_the_details_name_it(cli: Cli) -> None:
    ran = cli(
        "subscriptions",
        "create",
        "--name",
        "Bad client id",
        "--integration",
        "zoho-crm",
        "--client-id",
        "not a client id!",
        "--client-secret-stdin",
        stdin=CLIENT_SECRET,
    )

    assert ran.code == 1
    assert "(invalid_request, HTTP 400)" in ran.err
    assert "  body.client_id: " in ran.err


def test_given_no_secret_on_stdin_when_creating_then_it_is_a_usage_error(cli: Cli) -> None:
    ran = cli(
        "subscriptions",
        "create",
        "--name",
        "No secret",
        "--integration",
        "zoho-crm",
        "--client-id",
        "1000.X",
        "--client-secret-stdin",
        stdin="",
    )

    assert ran.code == 2
    assert "no client secret on standard input" in ran.err


def test_given_a_closed_port_when_listing_then_it_cannot_reach_the_broker(cli: Cli) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"

    ran = cli("subscriptions", "list", url=url)

    assert ran.code == 3
    assert ran.err.startswith(f"broker: error: cannot reach the broker at {url}: ")
    assert "Traceback" not in ran.err


def test_given_a_server_that_never_answers_when_listing_then_it_times_out(cli: Cli) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel accepts connections; nobody ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"

        ran = cli("--timeout", "0.5", "subscriptions", "list", url=url)

    assert ran.code == 3
    assert f"cannot reach the broker at {url}: no answer within 0.5 s" in ran.err


def test_given_no_aws_credentials_when_signing_then_it_says_so(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    ran = cli("--sign", "integrations")

    assert ran.code == 1
    assert ran.err.startswith("broker: error: signing needs AWS credentials and none were found")
    assert "--no-sign" in ran.err


def test_given_credentials_when_signing_then_requests_carry_a_sigv4_signature(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The local gateway ignores signatures, so a signed call works as an unsigned one does.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    ran = cli("--sign", "--region", "eu-west-1", "integrations")
    auth = _signer("eu-west-1")
    request = httpx.Request("POST", "https://abc.execute-api.eu-west-1.amazonaws.com/admin/x", json={"a": 1})

    signed = next(auth.sync_auth_flow(request))

    assert ran.code == 0, ran.err
    assert signed.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in signed.headers["Authorization"]
    assert "SignedHeaders=content-type;host;x-amz-date" in signed.headers["Authorization"]
    assert signed.headers["X-Amz-Date"]


def _signer(region: str) -> SigV4:
    return sigv4_for(f"https://abc.execute-api.{region}.amazonaws.com", region=None, profile=None)


@pytest.mark.parametrize(
    ("url", "requested", "expected"),
    [
        ("https://abc.execute-api.eu-west-1.amazonaws.com", None, True),
        ("https://127.0.0.1:3000", None, False),
        ("https://localhost", None, False),
        ("http://broker.example.com", None, False),
        ("http://127.0.0.1:3000", True, True),
        ("https://abc.execute-api.eu-west-1.amazonaws.com", False, False),
    ],
)
def test_given_a_url_when_deciding_then_only_remote_https_is_signed_by_default(
    url: str, requested: bool | None, expected: bool
) -> None:
    assert should_sign(url, requested) is expected


# --------------------------------------------------------------------------------------------------
# The installed console script


def test_given_the_installed_console_script_when_creating_and_listing_then_it_works(broker: Broker) -> None:
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


def test_given_the_installed_console_script_when_the_broker_is_down_then_it_exits_3() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"

    ran = subprocess.run(
        [CONSOLE_SCRIPT, "--url", url, "integrations"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert ran.returncode == 3
    assert ran.stderr.startswith(f"broker: error: cannot reach the broker at {url}: ")

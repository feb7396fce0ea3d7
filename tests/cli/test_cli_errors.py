"""The `broker` tool's refusals: bad arguments (exit 2), the broker's errors (exit 1) and a broker it
cannot reach (exit 3), against the real local runner."""

from __future__ import annotations

import socket

from running import CLIENT_SECRET, Cli, closed_port

# --------------------------------------------------------------------------------------------------
# Bad arguments, API errors, unreachable servers


def test_create_without_a_name_exits_2(cli: Cli) -> None:
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


def test_a_malformed_custom_field_exits_2(cli: Cli) -> None:
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


def test_half_the_throttling_is_a_usage_error(cli: Cli) -> None:
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


def test_an_id_with_a_slash_exits_2(cli: Cli) -> None:
    ran = cli("subscriptions", "show", "../integrations")

    assert ran.code == 2
    assert "not a subscription id" in ran.err


def test_an_unknown_integration_shows_the_apis_message(cli: Cli) -> None:
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


def test_an_invalid_field_is_named_in_the_details(cli: Cli) -> None:
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


def test_create_without_a_secret_on_stdin_is_a_usage_error(cli: Cli) -> None:
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


def test_a_closed_port_cannot_reach_the_broker(cli: Cli) -> None:
    url = f"http://127.0.0.1:{closed_port()}"

    ran = cli("subscriptions", "list", url=url)

    assert ran.code == 3
    assert ran.err.startswith(f"broker: error: cannot reach the broker at {url}: ")
    assert "Traceback" not in ran.err


def test_a_server_that_never_answers_times_out(cli: Cli) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel accepts connections; nobody ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"

        ran = cli("--timeout", "0.5", "subscriptions", "list", url=url)

    assert ran.code == 3
    assert f"cannot reach the broker at {url}: no answer within 0.5 s" in ran.err

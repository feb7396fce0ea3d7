"""The command line: argparse parsers for every command and the types that check values early."""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

import httpx

from broker_cli import __version__, commands
from broker_cli.call import call
from broker_cli.client import DEFAULT_TIMEOUT_SECONDS, DEFAULT_URL

SUBSCRIPTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_PAGE = 100
INTEGRATION_ID = re.compile(r"^[a-z][a-z0-9-]{1,63}$")
VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")

DESCRIPTION = """\
Administer a Zoho OAuth broker: subscriptions, connect links, tokens, integrations and versions.

Talks to the local runner (`make dev`, http://127.0.0.1:3000, no signature) or to a deployed stack,
whose admin routes need an AWS SigV4 signature (execute-api) from your AWS credentials."""

EPILOG = """\
examples:
  export BROKER_URL=https://abc123.execute-api.eu-west-1.amazonaws.com
  printf '%s' "$ZOHO_CLIENT_SECRET" | broker subscriptions create --name "Acme CRM" \\
      --integration zoho-crm --client-id 1000.XXXX --client-secret-stdin
  broker subscriptions list
  broker connect-link sub_3f2a...
  broker versions add zoho-commerce 2 --file version.json
  printf '%s' "$GRANT_CODE" | broker grant-code sub_3f2a... --data-centre eu
  curl -H "Authorization: Zoho-oauthtoken $(broker token sub_3f2a...)" https://www.zohoapis.eu/crm/v8/org
  broker call sub_3f2a... GET Leads -p per_page=5
  broker call sub_3f2a... POST Leads --data '{"data": [{"Last_Name": "Ng"}]}'

exit codes: 0 done, 1 the broker refused or the operation failed, 2 bad arguments (or --yes missing
without a terminal), 3 the broker could not be reached or did not answer in time."""


# --------------------------------------------------------------------------------------------------
# Value types: a bad value is an argparse error (exit 2) before anything is sent.


def broker_url(text: str) -> str:
    try:
        url = httpx.URL(text.strip())
    except httpx.InvalidURL as error:
        raise argparse.ArgumentTypeError(f"not a URL: {text!r} ({error})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text!r}")
    if url.query or url.fragment:
        raise argparse.ArgumentTypeError(f"the broker's URL takes no query or fragment: {text!r}")
    return str(url).rstrip("/")


def subscription_id(text: str) -> str:
    if not SUBSCRIPTION_ID.match(text):
        raise argparse.ArgumentTypeError(
            f"not a subscription id: {text!r} (letters, digits, '_' and '-', like sub_3f2a...)"
        )
    return text


def key_value(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def secret_for_data_centre(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key.strip() or not value:
        # Never echo the argument: it holds a secret.
        raise argparse.ArgumentTypeError("expected DC=SECRET with both parts, e.g. eu=...")
    return key.strip(), value


def integration_id(text: str) -> str:
    if not INTEGRATION_ID.match(text):
        raise argparse.ArgumentTypeError(f"not an integration id: {text!r} (like zoho-crm)")
    return text


def version_name(text: str) -> str:
    if not VERSION_NAME.match(text):
        raise argparse.ArgumentTypeError(f"not a version name: {text!r} (letters, digits, '.', '_', '-')")
    return text


def data_centre(text: str) -> str:
    if not re.fullmatch(r"[a-z]{2,8}", text):
        raise argparse.ArgumentTypeError(f"not a data centre: {text!r} (us, eu, in, au, jp, ca, sa, uk, cn)")
    return text


def positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return number


def page_size(text: str) -> int:
    number = positive_int(text)
    if number > MAX_PAGE:
        raise argparse.ArgumentTypeError(f"at most {MAX_PAGE} per page: {text!r}")
    return number


def seconds(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < number <= 600:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 600 seconds: {text!r}")
    return number


# --------------------------------------------------------------------------------------------------
# Options every command takes, before or after the command's name.


def _common_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """On the top-level parser with real defaults; on each command with none, so they don't override."""

    def default(value: Any) -> Any:
        return value if top_level else argparse.SUPPRESS

    group = parser.add_argument_group("connection and output")
    group.add_argument(
        "--url",
        type=broker_url,
        default=default(os.environ.get("BROKER_URL") or DEFAULT_URL),
        help=f"the broker's base URL (default: $BROKER_URL, else {DEFAULT_URL})",
    )
    group.add_argument(
        "--sign",
        action=argparse.BooleanOptionalAction,
        default=default(None),
        help="sign requests with AWS SigV4 (default: sign https URLs that are not localhost)",
    )
    group.add_argument(
        "--region",
        default=default(None),
        help="AWS region for signing (default: from an execute-api URL, else $AWS_REGION, "
        "$AWS_DEFAULT_REGION or the profile's)",
    )
    group.add_argument(
        "--profile", default=default(None), help="AWS profile for signing (default: $AWS_PROFILE)"
    )
    group.add_argument(
        "--timeout",
        type=seconds,
        default=default(DEFAULT_TIMEOUT_SECONDS),
        metavar="SECONDS",
        help=f"give up waiting for an answer after this long (default: {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the API's JSON answer instead of the human-readable form",
    )


def _command(
    subparsers: Any, name: str, *, help: str, description: str | None = None
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description or help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common_options(parser, top_level=False)
    return parser


def _settings_options(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    """The subscription's settings: all required ones on create, any subset on update."""
    parser.add_argument("--name", required=creating, help="unique name (case-insensitive)")
    if creating:
        parser.add_argument(
            "--integration", required=True, help="integration id, e.g. zoho-crm (see `broker integrations`)"
        )
    parser.add_argument("--version", help="integration version (default: the latest)")
    parser.add_argument("--client-id", required=creating, help="the Zoho API Console client id")
    secret = parser.add_mutually_exclusive_group(required=creating)
    secret.add_argument(
        "--client-secret-stdin",
        action="store_true",
        help="read the client secret from standard input (recommended; prompted without echo at a terminal)",
    )
    secret.add_argument(
        "--client-secret",
        metavar="SECRET",
        help="the client secret itself (it lands in shell history and process lists: "
        "prefer --client-secret-stdin)",
    )
    parser.add_argument(
        "--client-secret-for-dc",
        type=secret_for_data_centre,
        action="append",
        metavar="DC=SECRET",
        help="a different client secret for one data centre, repeatable (only for API Console clients "
        "with a secret per data centre; lands in shell history)"
        + ("" if creating else "; the set given replaces the current one"),
    )
    parser.add_argument("--api-url", help="Zoho API base URL (default: the version's)")
    parser.add_argument(
        "--requests-per-minute",
        type=positive_int,
        metavar="R",
        help="throttling, with --max-concurrent-requests",
    )
    parser.add_argument(
        "--max-concurrent-requests",
        type=positive_int,
        metavar="C",
        help="throttling, with --requests-per-minute",
    )
    parser.add_argument(
        "--custom-field",
        type=key_value,
        action="append",
        metavar="KEY=VALUE",
        help="a custom field of the version, repeatable (RedirectUrl, OrganizationId for Zoho Commerce)"
        + ("" if creating else "; the set given replaces all current custom fields"),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broker",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-V", "--version", action="version", version=f"broker {__version__}")
    _common_options(parser, top_level=True)
    top = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")

    subscriptions = _command(top, "subscriptions", help="create, list, show, update and delete subscriptions")
    actions = subscriptions.add_subparsers(title="subscription commands", dest="action", required=True)

    create = _command(actions, "create", help="create a subscription (POST /admin/subscriptions)")
    _settings_options(create, creating=True)
    create.set_defaults(run=commands.create_subscription)

    listing = _command(actions, "list", help="list subscriptions with their status")
    listing.add_argument(
        "--limit", type=page_size, default=50, help=f"page size, 1 to {MAX_PAGE} (default: 50)"
    )
    listing.add_argument("--cursor", help="start at this page (the next_cursor of a previous answer)")
    listing.add_argument("--all", action="store_true", help="follow next_cursor to the end")
    listing.set_defaults(run=commands.list_subscriptions)

    show = _command(actions, "show", help="one subscription, secrets masked")
    show.add_argument("subscription_id", type=subscription_id, metavar="ID")
    show.set_defaults(run=commands.show_subscription)

    update = _command(
        actions,
        "update",
        help="change some settings (PATCH); a new --client-id disconnects the subscription",
    )
    update.add_argument("subscription_id", type=subscription_id, metavar="ID")
    _settings_options(update, creating=False)
    update.set_defaults(run=commands.update_subscription)

    delete = _command(
        actions, "delete", help="delete a subscription; its secret is scheduled for deletion (7 days)"
    )
    delete.add_argument("subscription_id", type=subscription_id, metavar="ID")
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(run=commands.delete_subscription)

    clear = _command(
        actions,
        "clear-organization",
        help="clear the Zoho organization binding, so the next consent may connect another organization",
    )
    clear.add_argument("subscription_id", type=subscription_id, metavar="ID")
    clear.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    clear.set_defaults(run=commands.clear_organization)

    link = _command(
        top, "connect-link", help="a single-use connect link to send to the person who consents at Zoho"
    )
    link.add_argument("subscription_id", type=subscription_id, metavar="ID")
    link.set_defaults(run=commands.connect_link)

    token = _command(
        top,
        "token",
        help="print a valid access token (alone, for an Authorization header; --json for the document)",
    )
    token.add_argument("subscription_id", type=subscription_id, metavar="ID")
    token.set_defaults(run=commands.access_token)

    refresh = _command(top, "refresh", help="refresh the access token now")
    refresh.add_argument("subscription_id", type=subscription_id, metavar="ID")
    refresh.set_defaults(run=commands.refresh_now)

    revoke = _command(top, "revoke", help="disconnect: revoke the refresh token at Zoho and clear the tokens")
    revoke.add_argument("subscription_id", type=subscription_id, metavar="ID")
    revoke.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    revoke.set_defaults(run=commands.revoke)

    grant = _command(
        top,
        "grant-code",
        help="connect a Self Client subscription with the grant code its owner generated (read from stdin)",
    )
    grant.add_argument("subscription_id", type=subscription_id, metavar="ID")
    grant.add_argument(
        "--data-centre",
        required=True,
        type=data_centre,
        help="where the code was generated (us, eu, in, ...)",
    )
    grant.set_defaults(run=commands.grant_code)

    _call_command(top)
    _integration_commands(top)
    return parser


def _call_command(top: Any) -> None:
    command = _command(
        top,
        "call",
        help="call the subscription's Zoho API through the broker's proxy; prints Zoho's answer",
        description="Call PATH under the subscription's API base (CRM: Leads, org; Commerce: products) "
        "through /proxy/{subscription}/..., within its throttling. Exit 0 on 2xx, 1 otherwise.",
    )
    command.add_argument("subscription_id", type=subscription_id, metavar="SUB")
    command.add_argument("method", type=str.upper, choices=("GET", "POST", "PUT", "PATCH", "DELETE"))
    command.add_argument("path", help="under the API base, e.g. Leads or Leads/4150868000000624001")
    command.add_argument("--data", "-d", help="the body: text, @FILE, or - for standard input")
    command.add_argument("--content-type", default="application/json", help="of --data (default: JSON)")
    command.add_argument(
        "--param", "-p", type=key_value, action="append", metavar="KEY=VALUE", help="a query parameter"
    )
    command.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="let the broker hold the call this long for its turn (0 to 10, default 10)",
    )
    command.add_argument("--retries", type=int, default=3, help="retries after a 429 (default 3)")
    command.set_defaults(run=call)


def _integration_commands(top: Any) -> None:
    integrations = _command(
        top, "integrations", help="the integrations catalogue (alone: the list); show or create one"
    )
    integrations.set_defaults(run=commands.list_integrations)
    actions = integrations.add_subparsers(title="integration commands", dest="action", metavar="ACTION")
    show = _command(actions, "show", help="one integration and every version")
    show.add_argument("integration", type=integration_id, metavar="INTEGRATION")
    show.set_defaults(run=commands.show_integration)
    create = _command(actions, "create", help="a new integration with its first version")
    create.add_argument("integration", type=integration_id, metavar="INTEGRATION")
    create.add_argument("--name", required=True, help="as people read it, e.g. 'Zoho CRM sandbox'")
    create.add_argument("--description", default="")
    create.add_argument("--version", required=True, type=version_name, help="the first version's name")
    _version_options(create)
    create.set_defaults(run=commands.create_integration)

    versions = _command(top, "versions", help="an integration's versions: show, add, update, delete")
    actions = versions.add_subparsers(
        title="version commands", dest="action", required=True, metavar="ACTION"
    )
    for name, help, run in (
        ("show", "one version", commands.show_version),
        ("add", "add a version (its fields from --file and the options)", commands.add_version),
        (
            "update",
            "change the fields given (--file and the options); the next consent uses them",
            commands.update_version,
        ),
        ("delete", "delete a version no subscription uses", commands.delete_version),
    ):
        action = _command(actions, name, help=help)
        action.add_argument("integration", type=integration_id, metavar="INTEGRATION")
        action.add_argument("version", type=version_name, metavar="VERSION")
        if name in ("add", "update"):
            _version_options(action)
        if name == "delete":
            action.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
        action.set_defaults(run=run)


def _version_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file",
        metavar="PATH",
        help="a JSON object of the version's fields ('-' reads standard input); the options below win",
    )
    parser.add_argument("--authorization-type", choices=("connect_link", "self_client"))
    parser.add_argument(
        "--oauth-url-template",
        metavar="URL",
        help="e.g. the seed's, with {Client_Id}, {iPaaSState}, {Scopes}, {SystemTypeVersion:RedirectUrl}",
    )
    parser.add_argument("--token-path", metavar="PATH")
    parser.add_argument("--revoke-path", metavar="PATH")
    parser.add_argument("--default-api-url", metavar="URL")
    parser.add_argument(
        "--default-scope", action="append", metavar="SCOPE", help="repeatable; the set given replaces all"
    )

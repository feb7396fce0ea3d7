"""One function per command: build the request, call the admin API, render the answer.

Each takes the parsed arguments and a Context and returns the exit code.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from broker_cli import output
from broker_cli.client import BrokerClient
from broker_cli.errors import CliError, ExitCode, UsageError
from broker_cli.output import Output, printable, when
from broker_cli.prompts import confirm, read_secret

SUBSCRIPTIONS = "/admin/subscriptions"
INTEGRATIONS = "/admin/integrations"
FAILED_REFRESHES = frozenset({"failed", "needs_reauthentication"})


@dataclass(frozen=True)
class Context:
    client: BrokerClient
    out: Output
    stdin: TextIO


def _path(subscription_id: str, *rest: str) -> str:
    return "/".join([SUBSCRIPTIONS, subscription_id, *rest])


def _pairs(given: list[tuple[str, str]] | None, option: str) -> dict[str, str] | None:
    if given is None:
        return None
    values: dict[str, str] = {}
    for key, value in given:
        if key in values:
            raise UsageError(f"{option} {key} is given twice")
        values[key] = value
    return values


def _settings_body(args: argparse.Namespace, stdin: TextIO) -> dict[str, Any]:
    """The fields the person gave, in the API's shape (create and update share them)."""
    body: dict[str, Any] = {}
    for field in ("name", "integration", "version", "client_id", "api_url"):
        value = getattr(args, field, None)
        if value is not None:
            body[field] = value
    rate, concurrency = args.requests_per_minute, args.max_concurrent_requests
    if (rate is None) != (concurrency is None):
        raise UsageError("throttling needs both --requests-per-minute and --max-concurrent-requests")
    if rate is not None:
        body["throttling"] = {"requests_per_minute": rate, "max_concurrent_requests": concurrency}
    custom_fields = _pairs(args.custom_field, "--custom-field")
    if custom_fields is not None:
        body["custom_fields"] = custom_fields
    by_data_centre = _pairs(args.client_secret_for_dc, "--client-secret-for-dc")
    if by_data_centre is not None:
        body["client_secrets_by_data_centre"] = by_data_centre
    # Last: a prompt for the secret comes after every other argument has been checked.
    if args.client_secret_stdin:
        body["client_secret"] = read_secret(stdin, what="client secret")
    elif args.client_secret is not None:
        body["client_secret"] = args.client_secret
    return body


def _show(ctx: Context, subscription: Any) -> None:
    if ctx.out.as_json:
        ctx.out.document(subscription)
    else:
        ctx.out.line(output.subscription_details(subscription))


def create_subscription(args: argparse.Namespace, ctx: Context) -> int:
    created = ctx.client.post(SUBSCRIPTIONS, _settings_body(args, ctx.stdin))
    _show(ctx, created)
    if not ctx.out.as_json:
        ctx.out.note(f"Created. Next, a connect link: broker connect-link {created['subscription_id']}")
    return ExitCode.OK


def list_subscriptions(args: argparse.Namespace, ctx: Context) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.cursor:
        params["cursor"] = args.cursor
    page = ctx.client.get(SUBSCRIPTIONS, params=params)
    rows: list[dict[str, Any]] = list(page.get("subscriptions") or [])
    seen: set[str] = set()
    while args.all and page.get("next_cursor"):
        cursor = page["next_cursor"]
        if cursor in seen:
            raise CliError("the broker answered the same next_cursor twice; stopping")
        seen.add(cursor)
        page = ctx.client.get(SUBSCRIPTIONS, params={"limit": args.limit, "cursor": cursor})
        rows.extend(page.get("subscriptions") or [])
    next_cursor = page.get("next_cursor")
    if ctx.out.as_json:
        # One page: the API's answer as it is. --all: every page's subscriptions in one answer.
        ctx.out.document(page if not args.all else {"subscriptions": rows, "next_cursor": None})
        return ExitCode.OK
    ctx.out.line(output.subscriptions_table(rows))
    if next_cursor:
        ctx.out.note(f"More: broker subscriptions list --cursor {next_cursor} (or --all)")
    return ExitCode.OK


def show_subscription(args: argparse.Namespace, ctx: Context) -> int:
    _show(ctx, ctx.client.get(_path(args.subscription_id)))
    return ExitCode.OK


def update_subscription(args: argparse.Namespace, ctx: Context) -> int:
    body = _settings_body(args, ctx.stdin)
    if not body:
        raise UsageError("nothing to update: give at least one setting (see broker subscriptions update -h)")
    _show(ctx, ctx.client.patch(_path(args.subscription_id), body))
    return ExitCode.OK


def _describe(ctx: Context, subscription_id: str) -> str:
    """'sub_x ("Name", connected)' for a confirmation question; fails early on an unknown id."""
    subscription = ctx.client.get(_path(subscription_id))
    return f'{subscription_id} ("{printable(subscription.get("name"))}", {printable(subscription.get("status"))})'


def _confirm(ctx: Context, args: argparse.Namespace, question: str, *, action: str) -> None:
    """Ask before a change that cannot be undone; ``{subscription}`` in the question names it."""
    confirm(
        lambda: question.format(subscription=_describe(ctx, args.subscription_id)),
        action=f"{action} {args.subscription_id}",
        assume_yes=args.yes,
        stdin=ctx.stdin,
        stderr=ctx.out.stderr,
    )


def delete_subscription(args: argparse.Namespace, ctx: Context) -> int:
    _confirm(ctx, args, "Delete subscription {subscription} and its tokens?", action="delete")
    ctx.client.delete(_path(args.subscription_id))
    if ctx.out.as_json:
        # The API answers 204 without a body; this says what happened in JSON.
        ctx.out.document({"subscription_id": args.subscription_id, "deleted": True})
    else:
        ctx.out.line(
            f"Deleted {args.subscription_id}; its secret is scheduled for deletion (recoverable for 7 days)."
        )
    return ExitCode.OK


def connect_link(args: argparse.Namespace, ctx: Context) -> int:
    link = ctx.client.post(_path(args.subscription_id, "connect-links"))
    if ctx.out.as_json:
        ctx.out.document(link)
    else:
        ctx.out.line(str(link["url"]))
        ctx.out.note(f"Single use; expires {when(link.get('expires_at'))}.")
    return ExitCode.OK


def access_token(args: argparse.Namespace, ctx: Context) -> int:
    token = ctx.client.get(_path(args.subscription_id, "token"))
    if ctx.out.as_json:
        ctx.out.document(token)
    else:
        # The one place a token is printed: this command's purpose, e.g. inside $(broker token ID).
        ctx.out.line(str(token["access_token"]))
    return ExitCode.OK


def refresh_now(args: argparse.Namespace, ctx: Context) -> int:
    outcome = ctx.client.post(_path(args.subscription_id, "refresh"))
    result = outcome.get("result")
    if ctx.out.as_json:
        ctx.out.document(outcome)
    elif result not in FAILED_REFRESHES:
        ctx.out.line(
            f"{args.subscription_id}: {printable(result)}; the access token is valid until "
            f"{when(outcome.get('access_token_expires_at'))}."
        )
    if result == "needs_reauthentication":
        raise CliError(
            f"Zoho refused the refresh token ({printable(outcome.get('error'))}): {args.subscription_id} "
            f"needs re-authentication; send a new connect link (broker connect-link {args.subscription_id})"
        )
    if result == "failed":
        raise CliError(
            f"the refresh failed ({printable(outcome.get('error'))}); the broker tries again at "
            f"{when(outcome.get('next_attempt_at'))}"
        )
    return ExitCode.OK


def clear_organization(args: argparse.Namespace, ctx: Context) -> int:
    """PATCH {"organization": null}: the next consent binds whichever organization it connects."""
    _confirm(
        ctx,
        args,
        "Clear the Zoho organization binding of {subscription}?",
        action="clear the organization of",
    )
    subscription = ctx.client.patch(_path(args.subscription_id), {"organization": None})
    if ctx.out.as_json:
        ctx.out.document(subscription)
    else:
        ctx.out.line(
            f"Cleared the organization binding of {args.subscription_id}: the next consent binds the "
            f"organization it connects (broker connect-link {args.subscription_id})."
        )
    return ExitCode.OK


def revoke(args: argparse.Namespace, ctx: Context) -> int:
    _confirm(ctx, args, "Disconnect {subscription}: revoke its refresh token at Zoho?", action="revoke")
    subscription = ctx.client.post(_path(args.subscription_id, "revoke"))
    if ctx.out.as_json:
        ctx.out.document(subscription)
    else:
        ctx.out.line(
            f"Disconnected {args.subscription_id}: status {printable(subscription.get('status'))}. "
            f"Connect it again with: broker connect-link {args.subscription_id}"
        )
    return ExitCode.OK


def list_integrations(args: argparse.Namespace, ctx: Context) -> int:
    catalogue = ctx.client.get(INTEGRATIONS)
    if ctx.out.as_json:
        ctx.out.document(catalogue)
    else:
        ctx.out.line(output.integrations_table(catalogue))
    return ExitCode.OK


def _show_integration(ctx: Context, integration: Any) -> None:
    if ctx.out.as_json:
        ctx.out.document(integration)
    else:
        ctx.out.line(output.integrations_table({"integrations": [integration]}))
        for version in integration.get("versions") or []:
            ctx.out.line("")
            ctx.out.line(output.version_details(version))


def show_integration(args: argparse.Namespace, ctx: Context) -> int:
    _show_integration(ctx, ctx.client.get(f"{INTEGRATIONS}/{args.integration}"))
    return ExitCode.OK


def create_integration(args: argparse.Namespace, ctx: Context) -> int:
    body = {
        "id": args.integration,
        "name": args.name,
        "description": args.description,
        "version": _version_body(args, ctx.stdin, creating=True),
    }
    _show_integration(ctx, ctx.client.post(INTEGRATIONS, body))
    return ExitCode.OK


def _version_body(args: argparse.Namespace, stdin: TextIO, *, creating: bool) -> dict[str, Any]:
    """The version's fields from --file (JSON, '-' for standard input), then the options given."""
    body: dict[str, Any] = {}
    if args.file is not None:
        text = stdin.read() if args.file == "-" else _read_file(args.file)
        try:
            body = json.loads(text)
        except ValueError as error:
            raise UsageError(f"--file is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise UsageError("--file must hold a JSON object of the version's fields")
    for field in ("authorization_type", "oauth_url_template", "token_path", "revoke_path", "default_api_url"):
        value = getattr(args, field)
        if value is not None:
            body[field] = value
    if args.default_scope is not None:
        body["default_scopes"] = args.default_scope
    if creating:
        body["version"] = args.version
    elif not body:
        raise UsageError("nothing to change: give --file or a version option")
    return body


def _read_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read --file {path}: {error.strerror}") from None


def _version_path(args: argparse.Namespace) -> str:
    return f"{INTEGRATIONS}/{args.integration}/versions/{args.version}"


def _show_version(ctx: Context, version: Any) -> None:
    if ctx.out.as_json:
        ctx.out.document(version)
    else:
        ctx.out.line(output.version_details(version))


def show_version(args: argparse.Namespace, ctx: Context) -> int:
    _show_version(ctx, ctx.client.get(_version_path(args)))
    return ExitCode.OK


def add_version(args: argparse.Namespace, ctx: Context) -> int:
    body = _version_body(args, ctx.stdin, creating=True)
    _show_version(ctx, ctx.client.post(f"{INTEGRATIONS}/{args.integration}/versions", body))
    return ExitCode.OK


def update_version(args: argparse.Namespace, ctx: Context) -> int:
    _show_version(ctx, ctx.client.patch(_version_path(args), _version_body(args, ctx.stdin, creating=False)))
    return ExitCode.OK


def delete_version(args: argparse.Namespace, ctx: Context) -> int:
    confirm(
        lambda: f"Delete version {args.version} of {args.integration}?",
        action=f"delete version {args.version} of {args.integration}",
        assume_yes=args.yes,
        stdin=ctx.stdin,
        stderr=ctx.out.stderr,
    )
    ctx.client.delete(_version_path(args))
    if not ctx.out.as_json:
        ctx.out.line(f"Deleted version {args.version} of {args.integration}.")
    return ExitCode.OK


def grant_code(args: argparse.Namespace, ctx: Context) -> int:
    """A Self Client grant code, read from standard input (never an argument: shell history keeps those)."""
    code = read_secret(ctx.stdin, what="grant code")
    body = {"code": code, "data_centre": args.data_centre}
    subscription = ctx.client.post(_path(args.subscription_id, "grant-code"), body)
    if ctx.out.as_json:
        ctx.out.document(subscription)
    else:
        ctx.out.line(
            f"Connected {args.subscription_id} ({printable(subscription.get('data_centre'))}): "
            f"status {printable(subscription.get('status'))}."
        )
    return ExitCode.OK

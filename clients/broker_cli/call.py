"""`broker call SUB METHOD PATH`: one call to a subscription's Zoho API through the broker's proxy."""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx

from broker_cli.commands import Context
from broker_cli.errors import CliError, ExitCode, Unreachable, UsageError
from broker_client import BrokerCallError, ProxyClient


def _body(data: str | None, ctx: Context) -> bytes | None:
    """--data: the body itself, @FILE for a file's bytes, or - for standard input."""
    if data is None:
        return None
    if data == "-":
        return ctx.stdin.read().encode()
    if data.startswith("@"):
        try:
            return Path(data[1:]).read_bytes()
        except OSError as error:
            raise UsageError(f"cannot read {data[1:]}: {error.strerror}") from None
    return data.encode()


def call(args: argparse.Namespace, ctx: Context) -> int:
    """Print Zoho's answer body; exit 0 on 2xx, 1 otherwise (the status on standard error)."""
    body = _body(args.data, ctx)
    headers = {"Content-Type": args.content_type} if body is not None else {}
    proxy = ProxyClient(
        ctx.client.base_url,
        args.subscription_id,
        http=ctx.client.http,
        max_wait_seconds=args.wait,
        retries=args.retries,
    )
    try:
        response = proxy.request(
            args.method, args.path, params=dict(args.param or []), content=body, headers=headers
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    except BrokerCallError as refused:
        raise CliError(f"the broker refused the call: {refused}") from None
    except httpx.TimeoutException:
        raise Unreachable(f"no answer from the broker at {ctx.client.base_url} in time") from None
    except httpx.TransportError as error:
        raise Unreachable(f"cannot reach the broker at {ctx.client.base_url}: {error}") from None
    if response.content:
        ctx.out.line(response.text.rstrip("\n"))
    if not response.is_success:
        ctx.out.note(f"HTTP {response.status_code} from Zoho")
        return ExitCode.FAILED
    return ExitCode.OK

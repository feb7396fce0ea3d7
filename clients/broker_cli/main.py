"""Entry point of the `broker` command: parse, connect (signed or not), run one command, exit."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from broker_cli.arguments import build_parser
from broker_cli.client import BrokerClient
from broker_cli.commands import Context
from broker_cli.errors import CliError, ExitCode
from broker_cli.output import Output
from broker_cli.signing import should_sign, sigv4_for


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit code is returned (the console script passes it to sys.exit)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse: --help (0) or bad arguments (2), already explained
        return stop.code if isinstance(stop.code, int) else ExitCode.USAGE
    out = Output(as_json=args.json, stdout=sys.stdout, stderr=sys.stderr)
    try:
        auth = (
            sigv4_for(args.url, region=args.region, profile=args.profile)
            if should_sign(args.url, args.sign)
            else None
        )
        with BrokerClient(args.url, auth=auth, timeout_seconds=args.timeout) as client:
            code: int = args.run(args, Context(client=client, out=out, stdin=sys.stdin))
            return code
    except CliError as error:
        out.error(error)
        return error.exit_code
    except KeyboardInterrupt:
        out.note("interrupted")
        return 130

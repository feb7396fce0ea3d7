"""Talking to the person at the terminal: secrets from standard input, confirmations."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import TextIO

from broker_cli.errors import CliError, UsageError


def read_secret(stdin: TextIO, *, what: str) -> str:
    """One secret from standard input: typed without echo at a terminal, else the piped text."""
    typed = stdin.isatty()
    value = (getpass.getpass(f"{what} (not echoed): ") if typed else stdin.read()).strip()
    if not value:
        raise UsageError(f"no {what} on standard input")
    if "\n" in value:
        raise UsageError(f"expected the {what} alone on standard input, got several lines")
    return value


def confirm(
    question: Callable[[], str], *, action: str, assume_yes: bool, stdin: TextIO, stderr: TextIO
) -> None:
    """Go on when --yes was given or the person answers yes; refuse without a terminal to ask at.

    ``question`` is only called when there is someone to ask (it may cost a request).
    """
    if assume_yes:
        return
    if not stdin.isatty():
        raise UsageError(
            f"refusing to {action} without confirmation: standard input is not a terminal; pass --yes"
        )
    stderr.write(f"{question()} [y/N] ")
    stderr.flush()
    if stdin.readline().strip().lower() not in ("y", "yes"):
        raise CliError("aborted: nothing was changed")

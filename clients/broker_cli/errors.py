"""What can go wrong, each with the exit code a script can rely on."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the broker refused or the operation failed (or the person said no)
    USAGE = 2  # bad arguments: argparse's own code, also for a missing --yes
    UNREACHABLE = 3  # no answer from the broker: connection refused, DNS, TLS, timeout


class CliError(Exception):
    """An error the person sees as one line (plus details); ``message`` never carries a secret."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)


class UsageError(CliError):
    exit_code = ExitCode.USAGE


class Unreachable(CliError):
    exit_code = ExitCode.UNREACHABLE


class ApiError(CliError):
    """The broker (or API Gateway in front of it) answered with an error status."""

    def __init__(self, message: str, *, status: int, code: str | None, details: Sequence[str] = ()) -> None:
        super().__init__(message, details=details)
        self.status = status
        self.code = code

"""Lambda SnapStart (the template's SnapStart parameter): init does the work, restores stay unique.

With SnapStart, Lambda runs the init phase once when it publishes a version and starts every execution
environment from a snapshot of it. So the functions make their clients during init (nothing that opens a
connection or reads a secret), and after each restore the ``random`` generator, which the snapshot would
otherwise give every environment in the same state (botocore's retry jitter and the refresh backoff
draw from it), is seeded afresh. ``secrets``, ``uuid4`` and the state nonces read os.urandom, which is
unique after a restore.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

# Lambda's value of AWS_LAMBDA_INITIALIZATION_TYPE when the init phase runs for a snapshot.
SNAP_START = "snap-start"


def _after_restore_registrar() -> Callable[[Callable[[], None]], object] | None:
    try:
        # Part of Lambda's Python runtimes (the open-source snapshot-restore-py); absent elsewhere.
        from snapshot_restore_py import register_after_restore  # type: ignore[import-not-found]
    except ImportError:
        return None
    registrar: Callable[[Callable[[], None]], object] = register_after_restore
    return registrar


def reseed() -> None:
    random.seed()  # from os.urandom


def prepare(warm: Callable[[], object]) -> bool:
    """Under SnapStart's init, run ``warm`` (into the snapshot) and reseed after every restore.

    Returns whether it did; on an ordinary cold start it does nothing, and the work happens on first use.
    """
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != SNAP_START:
        return False
    register = _after_restore_registrar()
    if register is not None:
        register(reseed)
    warm()
    return True

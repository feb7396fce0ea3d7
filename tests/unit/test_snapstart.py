"""SnapStart: the init work goes into the snapshot, and restored environments draw different randoms."""

import random
import sys
import types
from collections.abc import Callable

import pytest

from zoho_broker import snapstart


def test_an_ordinary_cold_start_makes_nothing_during_init(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
    made: list[str] = []

    assert snapstart.prepare(lambda: made.append("clients")) is False
    assert made == []


def test_restored_snapshots_draw_different_random_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given one snapshot, when two environments are restored from it, then their random draws differ.
    hooks: list[Callable[[], None]] = []
    runtime = types.ModuleType("snapshot_restore_py")
    runtime.register_after_restore = hooks.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    made: list[str] = []
    state = random.getstate()
    try:
        assert snapstart.prepare(lambda: made.append("clients")) is True
        snapshot = random.getstate()

        draws = []
        for _ in range(2):  # each restore starts from the snapshot and runs the hooks
            random.setstate(snapshot)
            for hook in hooks:
                hook()
            draws.append(random.random())
    finally:
        random.setstate(state)

    assert made == ["clients"]
    assert draws[0] != draws[1]

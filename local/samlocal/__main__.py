"""`python -m samlocal up|down|status`: make the engine ready for `sam local`, or stop what `up` started.

    python -m samlocal up     # packages, qemu-aarch64 (F flag), dockerd if none answers, the base image
    python -m samlocal down   # stops the dockerd that `up` started; leaves one it found running

`up` is best effort: when the engine cannot run here it says why, records the reason for the tests to
skip with, and exits 0, unless CI=true (or --required), where it exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from samlocal.base_image import IMAGE, ensure_base_image
from samlocal.engine import CACHE, EngineUnavailable, ensure_engine, stop_dockerd

UNAVAILABLE = CACHE / "unavailable.txt"  # why the last `up` failed; tests/samlocal skips with it


def required() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def up(must: bool) -> int:
    started = time.monotonic()
    try:
        engine = ensure_engine()
        how = ensure_base_image()
    except EngineUnavailable as error:
        CACHE.mkdir(parents=True, exist_ok=True)
        UNAVAILABLE.write_text(str(error))
        print(f"samlocal: the engine for sam local is not available: {error}", file=sys.stderr)
        return 1 if must else 0
    UNAVAILABLE.unlink(missing_ok=True)
    dockerd = "started dockerd" if engine.started_dockerd else "dockerd was running"
    print(f"samlocal: ready in {time.monotonic() - started:.0f} s ({dockerd}; {IMAGE} {how})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samlocal", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--required", action="store_true", help="exit 1 when the engine cannot run (CI=true)")
    options = parser.parse_args(argv)
    if options.command == "up":
        return up(options.required or required())
    if stop_dockerd():
        print("samlocal: stopped the dockerd `up` started")
    return 0


if __name__ == "__main__":
    sys.exit(main())

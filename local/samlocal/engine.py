"""The Docker engine `sam local` needs, made ready on a Debian machine: packages, dockerd, qemu for arm64.

Idempotent: what is already there is used as it is. A dockerd this module starts is recorded in a pid
file so that `stop_dockerd` stops that one and never one it found running.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zoho-broker" / "samlocal"
DOCKERD_PID = CACHE / "dockerd.pid"
DOCKERD_LOG = CACHE / "dockerd.log"
# The Debian packages, each named by a file it installs.
PACKAGES = {
    "docker.io": "/usr/sbin/dockerd",
    "qemu-user-static": "/usr/bin/qemu-aarch64-static",
    "binfmt-support": "/usr/sbin/update-binfmts",
    "debootstrap": "/usr/sbin/debootstrap",
}
BINFMT = Path("/proc/sys/fs/binfmt_misc")
QEMU_ENTRY = "qemu-aarch64"
DOCKERD_READY_SECONDS = 60


class EngineUnavailable(RuntimeError):
    """The engine cannot run here; the message says why and what to do."""


@dataclass(frozen=True)
class Engine:
    started_dockerd: bool  # True when this run started dockerd (and so should stop it)


def run(command: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """A command whose failure is an EngineUnavailable carrying its output."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise EngineUnavailable(f"{' '.join(command)}: {error}") from error
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-2000:]
        raise EngineUnavailable(f"{' '.join(command)} exited {result.returncode}: {output}")
    return result


def docker_answers() -> bool:
    """A daemon answers on the default socket (whoever started it)."""
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def ensure_packages() -> None:
    """apt-get installs the Debian packages that are missing (as root, as the Makefile does for Chromium)."""
    missing = [package for package, path in PACKAGES.items() if not Path(path).exists()]
    if not missing:
        return
    if os.geteuid() != 0:
        raise EngineUnavailable(
            f"{', '.join(missing)} missing and not root: apt-get install -y {' '.join(missing)}"
        )
    if shutil.which("apt-get") is None:
        raise EngineUnavailable(f"{', '.join(missing)} missing and no apt-get (not Debian?)")
    env_prefix = ["env", "DEBIAN_FRONTEND=noninteractive"]
    run([*env_prefix, "apt-get", "update", "-qq"], timeout=900)
    run([*env_prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], timeout=1800)


def ensure_qemu_binfmt() -> None:
    """qemu-aarch64 registered with the F flag, so arm64 binaries run inside containers too."""
    if not (BINFMT / "register").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)])
    entry = BINFMT / QEMU_ENTRY
    if not entry.exists():
        run(["update-binfmts", "--enable", QEMU_ENTRY])
    flags = _binfmt_flags(entry)
    if "F" not in flags:
        raise EngineUnavailable(
            f"{entry} is registered without the F flag (flags: {flags or 'none'}); containers cannot run "
            "arm64 binaries. Re-register it with F (Debian's qemu-user-static does by default)."
        )


def _binfmt_flags(entry: Path) -> str:
    try:
        text = entry.read_text()
    except OSError as error:
        raise EngineUnavailable(f"{entry} unreadable after update-binfmts: {error}") from error
    if not text.startswith("enabled"):
        run(["update-binfmts", "--enable", QEMU_ENTRY])
    for line in text.splitlines():
        if line.startswith("flags:"):
            return line.partition(":")[2].strip()
    return ""


def start_dockerd() -> bool:
    """dockerd in the background unless one answers; True when this call started it."""
    if docker_answers():
        return False
    if os.geteuid() != 0:
        raise EngineUnavailable("no Docker daemon answers and starting dockerd needs root")
    CACHE.mkdir(parents=True, exist_ok=True)
    # --userland-proxy=false: the proxy accepts connections before the emulator in the container listens,
    # and SAM's readiness check then gives up ("No response from invoke container").
    try:
        with DOCKERD_LOG.open("ab") as log:
            process = subprocess.Popen(
                ["dockerd", "--userland-proxy=false"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives this process: `make test` stops it after pytest
            )
    except OSError as error:
        raise EngineUnavailable(f"dockerd cannot be started: {error}") from error
    DOCKERD_PID.write_text(str(process.pid))
    deadline = time.monotonic() + DOCKERD_READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            DOCKERD_PID.unlink(missing_ok=True)
            tail = DOCKERD_LOG.read_text(errors="replace")[-2000:]
            raise EngineUnavailable(f"dockerd exited {process.returncode}; {DOCKERD_LOG}:\n{tail}")
        if docker_answers():
            return True
        time.sleep(0.5)
    stop_dockerd()
    raise EngineUnavailable(f"dockerd did not answer within {DOCKERD_READY_SECONDS} s; see {DOCKERD_LOG}")


def stop_dockerd() -> bool:
    """Stop the dockerd start_dockerd started (recorded in its pid file); True when one was stopped."""
    try:
        pid = int(DOCKERD_PID.read_text())
    except (OSError, ValueError):
        return False
    DOCKERD_PID.unlink(missing_ok=True)
    if not _is_dockerd(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _is_dockerd(pid):
        time.sleep(0.2)
    return True


def _is_dockerd(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return command.endswith(b"dockerd") and state != "Z"


def ensure_engine() -> Engine:
    """Packages, qemu for arm64 and a Docker daemon, whichever are missing."""
    if docker_answers() and (BINFMT / QEMU_ENTRY).exists():
        ensure_qemu_binfmt()
        return Engine(started_dockerd=False)
    ensure_packages()
    ensure_qemu_binfmt()
    return Engine(started_dockerd=start_dockerd())

"""A stand-in for AWS's Lambda Python base image, built from Debian's and PyPI's packages.

AWS's `public.ecr.aws/lambda/python:3.13-arm64` cannot be pulled on our machines. `sam local` with
`--skip-pull-image` uses whatever image carries that name, adding its Runtime Interface Emulator and the
layer on top. This builds one: a Debian trixie rootfs (its python3 is 3.13) from debootstrap, with
awslambdaric and boto3 in /var/runtime (the Lambda runtime provides boto3) and a /var/runtime/bootstrap.

The rootfs tarball is cached under ~/.cache/zoho-broker/samlocal, named by a key over everything that
goes into it; the imported image carries the key as a label and is reused while it matches.
"""

from __future__ import annotations

import compileall
import hashlib
import json
import py_compile
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from samlocal.engine import CACHE, EngineUnavailable, run

ARCHITECTURE = "arm64"
IMAGE = f"public.ecr.aws/lambda/python:3.13-{ARCHITECTURE}"
KEY_LABEL = "zoho-broker.samlocal.key"
SUITE = "trixie"
MIRROR = "http://deb.debian.org/debian"
DEBIAN_PACKAGES = "python3,ca-certificates"
RUNTIME_REQUIREMENTS = Path(__file__).with_name("runtime-requirements.txt")
PIP_PLATFORM = "manylinux2014_aarch64"
BOOTSTRAP = """#!/bin/sh
# The Lambda runtime: the layer (/opt/python), then the runtime's own packages (/var/runtime).
export PYTHONPATH=/opt/python:/var/runtime${PYTHONPATH:+:$PYTHONPATH}
exec /usr/bin/python3.13 -m awslambdaric "$_HANDLER"
"""
CHANGES = (
    "WORKDIR /var/task",
    "ENV LAMBDA_TASK_ROOT=/var/task",
    "ENV LAMBDA_RUNTIME_DIR=/var/runtime",
    "ENV LANG=C.UTF-8",
    "ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin:/opt/bin",
)
BUILD_SECONDS = 3600


def cache_key() -> str:
    """A digest over all that goes into the image: a change to any of it builds a new one."""
    parts = [
        ARCHITECTURE,
        SUITE,
        MIRROR,
        DEBIAN_PACKAGES,
        RUNTIME_REQUIREMENTS.read_text(),
        PIP_PLATFORM,
        BOOTSTRAP,
        *CHANGES,
        f"{sys.version_info.major}.{sys.version_info.minor}",  # the bytecode is compiled by this Python
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def rootfs_tarball(key: str) -> Path:
    return CACHE / f"rootfs-{ARCHITECTURE}-{key}.tar.gz"


def image_key() -> str | None:
    """The key the local image named IMAGE was built with, None when there is none."""
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{KEY_LABEL}"}}}}', IMAGE],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def ensure_base_image() -> str:
    """IMAGE in the local engine, built or loaded only when missing or stale; returns how it was got."""
    if sys.version_info[:2] != (3, 13):
        raise EngineUnavailable(f"the bytecode must be compiled by Python 3.13, not {sys.version.split()[0]}")
    key = cache_key()
    if image_key() == key:
        return "reused"
    tarball = rootfs_tarball(key)
    how = "imported from the cached rootfs"
    try:
        if not tarball.exists():
            build_rootfs(tarball)
            how = "built"
        import_image(tarball, key)
    except OSError as error:  # a full disk, a cache that cannot be written
        raise EngineUnavailable(f"building {IMAGE}: {error}") from error
    return how


def build_rootfs(tarball: Path) -> None:
    """debootstrap under qemu, the runtime's packages from PyPI, bytecode compiled in; then tar it.

    The debootstrapped tree is kept (with a stamp) until the tarball is made, so a failure in a later
    step does not cost the minutes of debootstrap again.
    """
    work = tarball.with_name(tarball.name.removesuffix(".tar.gz") + ".work")
    rootfs = work / "rootfs"
    stamp = work / "debootstrapped"
    if not stamp.exists():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        run(
            [
                "debootstrap",
                f"--arch={ARCHITECTURE}",
                "--variant=minbase",
                f"--include={DEBIAN_PACKAGES}",
                SUITE,
                str(rootfs),
                MIRROR,
            ],
            timeout=BUILD_SECONDS,
        )
        shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        stamp.touch()
    runtime = rootfs / "var" / "runtime"
    shutil.rmtree(runtime, ignore_errors=True)
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            "--target",
            str(runtime),
            "--platform",
            PIP_PLATFORM,
            "--python-version",
            "3.13",
            "--implementation",
            "cp",
            "--only-binary=:all:",
            "-r",
            str(RUNTIME_REQUIREMENTS),
        ],
    )
    bootstrap = runtime / "bootstrap"
    bootstrap.write_text(BOOTSTRAP)
    bootstrap.chmod(0o755)
    (rootfs / "var" / "task").mkdir(exist_ok=True)
    # Imports under qemu crawl without bytecode, and Lambda cannot write it: compile it in.
    compiled = compileall.compile_dir(
        runtime,
        quiet=1,
        stripdir=str(rootfs),
        prependdir="/",
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not compiled:
        raise EngineUnavailable(f"compiling {runtime} failed")
    partial = tarball.with_suffix(".partial")
    with tarfile.open(partial, "w:gz", compresslevel=1) as archive:
        archive.add(rootfs, arcname=".")
    partial.rename(tarball)
    shutil.rmtree(work)
    for stale in CACHE.glob(f"rootfs-{ARCHITECTURE}-*"):  # what older keys left
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale != tarball:
            stale.unlink()


def import_image(tarball: Path, key: str) -> None:
    """docker import, then the arm64 label Docker 20.10's import leaves off, then docker load."""
    changes = [*CHANGES, f"LABEL {KEY_LABEL}={key}"]
    command = ["docker", "import", "--platform", f"linux/{ARCHITECTURE}"]
    for change in changes:
        command += ["--change", change]
    run([*command, str(tarball), IMAGE], timeout=BUILD_SECONDS)
    relabel(IMAGE)
    if image_key() != key:
        raise EngineUnavailable(f"{IMAGE} was imported but does not carry {KEY_LABEL}={key}")


def relabel(image: str) -> None:
    """Mark the image arm64 v8 when its config says otherwise (Docker 20.10's import labels it amd64)."""
    architecture = run(["docker", "image", "inspect", "--format", "{{.Architecture}}", image]).stdout.strip()
    if architecture == ARCHITECTURE:
        return
    with tempfile.TemporaryDirectory(prefix="relabel-", dir=CACHE) as work:
        saved = Path(work) / "image.tar"
        run(["docker", "save", "-o", str(saved), image], timeout=BUILD_SECONDS)
        unpacked = Path(work) / "image"
        with tarfile.open(saved) as archive:
            archive.extractall(unpacked, filter="tar")
        manifest_path = unpacked / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        old_config = unpacked / manifest[0]["Config"]
        config = json.loads(old_config.read_text())
        config["architecture"] = ARCHITECTURE
        config["variant"] = "v8"
        data = json.dumps(config, separators=(",", ":")).encode()
        new_name = f"{hashlib.sha256(data).hexdigest()}.json"
        (unpacked / new_name).write_bytes(data)
        old_config.unlink()
        manifest[0]["Config"] = new_name
        manifest_path.write_text(json.dumps(manifest))
        relabelled = Path(work) / "relabelled.tar"
        with tarfile.open(relabelled, "w") as archive:
            for entry in sorted(unpacked.iterdir()):
                archive.add(entry, arcname=entry.name)
        run(["docker", "rmi", image])
        run(["docker", "load", "-i", str(relabelled)], timeout=BUILD_SECONDS)

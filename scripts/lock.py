"""Write agent/data/server-requirements.txt: the backup server's whole install, hash-locked.

    .venv/bin/python scripts/lock.py            # `make lock`: resolve with uv, then check
    .venv/bin/python scripts/lock.py --check    # only check the committed lock's wheels

The set is the agent's dependencies (base + `remote` + `server` extras of pyproject.toml) plus
duplicity itself without its declared dependencies (dozens of cloud SDKs dupstack does not
use: its local, sftp and pexpect backends need only what the extras name). uv resolves once
for every Python >= 3.11 and platform (--universal) and records the sha256 of every artifact.
The check downloads, hash-checked, a wheel of every locked package for each image the
template accepts: Debian 12 (Python 3.11) and 13 (3.13), x86_64 and aarch64.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from packaging.markers import Marker

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "agent" / "data" / "server-requirements.txt"
INDEX = "https://pypi.org/simple"
DUPLICITY = "duplicity==3.2.1"
PLATFORMS = [(python, arch) for python in ("3.11", "3.13") for arch in ("x86_64", "aarch64")]
BIN = Path(sys.executable).parent


def requirements() -> list[str]:
    """What the server installs besides duplicity, from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [*project["dependencies"], *extras["remote"], *extras["server"]]


def compile_lock(requirements: list[str], *extra: str) -> str:
    """The locked set of `requirements`; uv keeps the committed lock's versions where they
    still fit (it prefers an existing output file's pins), so a change re-pins only what it
    must."""
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "requirements.in"
        source.write_text("\n".join(requirements) + "\n")
        output = Path(scratch) / "requirements.txt"
        if LOCK.exists():
            output.write_text(LOCK.read_text())
        subprocess.run(
            [
                str(BIN / "uv"),
                "pip",
                "compile",
                "--quiet",
                "--universal",
                "--generate-hashes",
                "--python-version",
                "3.11",
                "--index-url",
                INDEX,
                "--no-header",
                "--no-annotate",
                "--output-file",
                str(output),
                *extra,
                str(source),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return output.read_text()


def write_lock() -> None:
    body = compile_lock(requirements()) + compile_lock([DUPLICITY], "--no-deps")
    header = (
        "# The backup server's install, every artifact pinned by sha256: `make lock`\n"
        "# (scripts/lock.py) writes it with uv; dupstack-install feeds it to\n"
        "# `pip install --no-deps --require-hashes`. Do not edit.\n"
    )
    LOCK.write_text(header + body)
    print(f"wrote {LOCK.relative_to(ROOT)} ({body.count('==')} packages)")


def lock_for(python: str, arch: str, lock: str | None = None) -> str:
    """The lock's entries that apply on CPython `python` (3.11) on Linux `arch`, markers
    evaluated for that target: `pip download --python-version` would evaluate them for the
    interpreter running it (pypa/pip#11010)."""
    target = {
        "python_version": python, "python_full_version": f"{python}.0",
        "implementation_name": "cpython", "platform_python_implementation": "CPython",
        "platform_machine": arch, "platform_system": "Linux", "sys_platform": "linux",
        "os_name": "posix",
    }  # fmt: skip
    text = (lock if lock is not None else LOCK.read_text()).replace("\\\n", " ")
    kept = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement, _, hashes = line.partition(" --hash=")
        name, _, marker = requirement.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate(target):
            continue
        kept.append(f"{name.strip()} --hash={hashes.strip()}")
    return "\n".join(kept) + "\n"


def download(python: str, arch: str, into: Path) -> int:
    """Hash-checked wheels of the lock for one image into `into`; how many."""
    wanted = lock_for(python, arch)
    with tempfile.TemporaryDirectory() as scratch:
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text(wanted)
        tags = [f"--platform=manylinux{tag}_{arch}" for tag in ("2014", "_2_17", "_2_28")]
        subprocess.run(
            [str(BIN / "pip"), "download", "--quiet", "--no-deps", "--require-hashes",
             "--only-binary=:all:", *tags, "--python-version", python,
             "--implementation", "cp", "--index-url", INDEX, "-r", str(requirements),
             "-d", str(into)],
            check=True,
            env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
        )  # fmt: skip
        return len(wanted.splitlines())


def check_platforms() -> None:
    """A hash-checked wheel of every locked package exists for every accepted image."""
    for python, arch in PLATFORMS:
        with tempfile.TemporaryDirectory() as scratch:
            count = download(python, arch, Path(scratch))
            assert len(os.listdir(scratch)) == count, f"Python {python} on {arch}: wheels missing"
            print(f"ok: Python {python} on {arch}: {count} wheels")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the committed lock")
    if not parser.parse_args().check:
        write_lock()
    check_platforms()
    return 0


if __name__ == "__main__":
    sys.exit(main())

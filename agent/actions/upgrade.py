"""`dupctl upgrade`: move this server to another dupstack release, in place.

The release is installed beside the running one by the same installer cloud-init ran at first
boot (agent/data/dupstack-install), pinned by version and sha256, into
/opt/dupstack/releases/VERSION; only once it works does /opt/dupstack/current switch to it
(one rename). Keys, inventory, chains, schedule and pinned host keys live in /etc and on the
volume: an upgrade never touches them. A failed upgrade leaves the running release current.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent import execute
from agent.errors import CommandFailed, UsageError
from agent.files import write_atomic
from agent.paths import ServerPaths

INSTALLER = Path(__file__).resolve().parents[1] / "data" / "dupstack-install"
VERSION = re.compile(r"[0-9][0-9A-Za-z.+!-]*")
SHA256 = re.compile(r"[0-9a-f]{64}")
URL = re.compile(r"https?://\S+")


@dataclass(frozen=True)
class Release:
    """What to install; None: as in install.env (the index the server was booted with)."""

    version: str
    sha256: str
    index_url: str | None = None
    wheelhouse_url: str | None = None
    wheelhouse_sha256: str | None = None

    def check(self) -> None:
        """UsageError naming the option, before anything runs."""
        checks = [
            ("--version", self.version, VERSION, "a release version like 0.2.0"),
            ("--sha256", self.sha256, SHA256, "the wheel's sha256 (64 lowercase hex digits)"),
            ("--index-url", self.index_url, URL, "an http(s) URL"),
            ("--wheelhouse-url", self.wheelhouse_url, URL, "an http(s) URL"),
            ("--wheelhouse-sha256", self.wheelhouse_sha256, SHA256, "64 lowercase hex digits"),
        ]
        for option, value, pattern, expected in checks:
            if value is not None and not pattern.fullmatch(value):
                raise UsageError(f"{option} {value!r} is not {expected}")
        if (self.wheelhouse_url is None) != (self.wheelhouse_sha256 is None):
            raise UsageError("--wheelhouse-url and --wheelhouse-sha256 go together")


def installed_prefix() -> Path:
    """/opt/dupstack when this dupctl runs from /opt/dupstack/releases/VERSION."""
    release = Path(sys.prefix)
    if release.parent.name != "releases" or not (release.parents[1] / "current").is_symlink():
        raise UsageError(
            f"this dupctl ({sys.prefix}) was not installed by dupstack-install: "
            "nothing to upgrade in place",
            hint="on a backup server, run /usr/local/sbin/dupctl (the installed release)",
        )
    return release.parents[1]


def upgrade(paths: ServerPaths, release: Release, say: Callable[[str], None]) -> str:
    """Install `release` beside the running one and make it current; the previous release."""
    release.check()
    prefix = installed_prefix()
    previous = (prefix / "current").readlink().name
    settings = {
        "DUPSTACK_VERSION": release.version,
        "DUPSTACK_SHA256": release.sha256,
        "DUPSTACK_PREFIX": str(prefix),
        "DUPSTACK_INSTALL_ENV": str(paths.install_env),
        "DUPSTACK_INDEX_URL": release.index_url,
        "DUPSTACK_WHEELHOUSE_URL": release.wheelhouse_url,
        "DUPSTACK_WHEELHOUSE_SHA256": release.wheelhouse_sha256,
    }
    given = {key: value for key, value in settings.items() if value is not None}
    say(f"dupctl upgrade: {previous} -> {release.version}")
    done = execute.run(("sh", str(INSTALLER)), env=given, ok_codes=range(256))
    output = done.output.strip().splitlines()
    for line in output:
        say(f"  {line}")
    if done.exit_code != 0:
        failure = next(
            (line for line in output if "install failed" in line), output[-1] if output else ""
        )
        raise CommandFailed(
            f"upgrade to {release.version} failed: {failure}",
            hint=f"{previous} is still the running release; nothing else changed",
        )
    _record(paths, given)
    execute.run((str(prefix / "current" / "bin" / "dupctl"), "schedule", "apply", "--quiet"))
    return previous


def _record(paths: ServerPaths, given: dict[str, str]) -> None:
    """install.env names the release now current (a rerun of dupstack-install keeps it)."""
    current = {}
    if paths.install_env.exists():
        for line in paths.install_env.read_text().splitlines():
            key, _, value = line.partition("=")
            current[key] = value
    keys = ("DUPSTACK_VERSION", "DUPSTACK_SHA256", "DUPSTACK_INDEX_URL",
            "DUPSTACK_WHEELHOUSE_URL", "DUPSTACK_WHEELHOUSE_SHA256")  # fmt: skip
    merged = {key: given.get(key, current.get(key, "")) for key in keys}
    text = "".join(f"{key}={value}\n" for key, value in merged.items())
    write_atomic(paths.install_env, text, 0o600)

"""`dupctl upgrade`: move this server to another dupstack release, in place.

The release is installed beside the running one by the same installer cloud-init ran at first
boot (agent/data/dupstack-install), pinned by version and sha256, into
/opt/dupstack/releases/VERSION-SHA12; only once it runs does /opt/dupstack/current switch to
it (one rename), and install.env then names it. A release kept from before (the previous one)
is switched back to without fetching anything. Keys, inventory, chains, schedule and pinned
host keys live in /etc and on the volume: an upgrade never touches them. A failed or
interrupted upgrade leaves the running release current.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from agent import PACKAGE_DATA, execute
from agent.errors import CommandFailed, DupstackError, UsageError
from agent.paths import ServerPaths

INSTALLER = PACKAGE_DATA / "dupstack-install"
# Canonical PEP 440 release versions, as pip names them (and as the installer checks).
VERSION = re.compile(r"[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?")
SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Release:
    """What to install; None: as in install.env (the source the server was booted with)."""

    version: str
    sha256: str
    index_url: str | None = None
    wheelhouse_url: str | None = None
    wheelhouse_sha256: str | None = None

    def check(self) -> None:
        """UsageError naming the option, before anything runs (a URL is never echoed)."""
        if not VERSION.fullmatch(self.version):
            raise UsageError(
                f"--version {self.version!r} is not a release version like 0.2.0",
                hint="give the canonical form, as on the package index",
            )
        for option, value in (
            ("--sha256", self.sha256),
            ("--wheelhouse-sha256", self.wheelhouse_sha256),
        ):
            if value is not None and not SHA256.fullmatch(value):
                raise UsageError(f"{option} {value!r} is not a sha256 (64 lowercase hex digits)")
        for option, url in (
            ("--index-url", self.index_url),
            ("--wheelhouse-url", self.wheelhouse_url),
        ):
            if url is not None:
                _check_url(option, url)
        if (self.wheelhouse_url is None) != (self.wheelhouse_sha256 is None):
            raise UsageError("--wheelhouse-url and --wheelhouse-sha256 go together")

    def settings(self) -> dict[str, str]:
        """The installer's DUPSTACK_* for this release: given here, else install.env's; an
        index given here drops the wheelhouse install.env names, and the other way round
        the wheelhouse wins anyway."""
        settings = {"DUPSTACK_VERSION": self.version, "DUPSTACK_SHA256": self.sha256}
        if self.index_url is not None:
            settings |= {"DUPSTACK_INDEX_URL": self.index_url, "DUPSTACK_WHEELHOUSE_URL": "",
                         "DUPSTACK_WHEELHOUSE_SHA256": ""}  # fmt: skip
        if self.wheelhouse_url is not None and self.wheelhouse_sha256 is not None:
            settings |= {"DUPSTACK_WHEELHOUSE_URL": self.wheelhouse_url,
                         "DUPSTACK_WHEELHOUSE_SHA256": self.wheelhouse_sha256}  # fmt: skip
        return settings


def _check_url(option: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        raise UsageError(f"{option} is not an http(s) URL", hint=f"check {option}")
    if parts.username or parts.password or parts.query:
        raise UsageError(
            f"{option} holds a credential or a signature (user:password@ or ?...): on the "
            "command line it would show in the process list and the shell history",
            hint=f"put it in /etc/dupstack/install.env (root only) as "
            f"DUPSTACK_{option.removeprefix('--').replace('-', '_').upper()}=... and run "
            "dupctl upgrade without it",
        )


def installed_prefix() -> Path:
    """/opt/dupstack when this dupctl runs from /opt/dupstack/releases/NAME."""
    release = Path(sys.prefix)
    if release.parent.name != "releases" or not (release.parents[1] / "current").is_symlink():
        raise UsageError(
            f"this dupctl ({sys.prefix}) was not installed by dupstack-install: "
            "nothing to upgrade in place",
            hint="on a backup server, run /usr/local/sbin/dupctl (the installed release)",
        )
    return release.parents[1]


def release_version(prefix: Path) -> str:
    """The version of the current release (its folder is VERSION-SHA12)."""
    return (prefix / "current").readlink().name.rsplit("-", 1)[0]


def upgrade(paths: ServerPaths, release: Release, say: Callable[[str], None]) -> str:
    """Install `release` beside the running one and make it current; the previous version."""
    release.check()
    prefix = installed_prefix()
    previous = release_version(prefix)
    environment = {
        **release.settings(),
        "DUPSTACK_PREFIX": str(prefix),
        "DUPSTACK_INSTALL_ENV": str(paths.install_env),
        "DUPSTACK_RECORD": "1",
        "DUPSTACK_RETRY_HINT": f"{previous} is still the running release; nothing else changed",
    }
    say(f"dupctl upgrade: {previous} -> {release.version}")
    done = execute.run(("sh", str(INSTALLER)), env=environment, ok_codes=execute.ANY_EXIT)
    output = done.output.strip().splitlines()
    for line in output:
        say(f"  {line}")
    if done.exit_code != 0:
        failure = next((line for line in output if "install failed" in line), "")
        raise CommandFailed(
            f"upgrade to {release.version} failed: {failure or f'exit {done.exit_code}'}",
            hint=f"{previous} is still the running release; nothing else changed",
        )
    try:  # the new release's crontab (its renderer may differ)
        execute.run((str(prefix / "current" / "bin" / "dupctl"), "schedule", "apply", "--quiet"))
    except DupstackError as error:
        say(f"warning: upgraded, but `dupctl schedule apply` failed: {error.message}")
    return previous

"""`dupctl host add`: make a tenant host ready for backups; idempotent.

On this server: the host's chrooted SFTP account `dup-NAME` (group dupstack-sftp, no shell),
its chroot on the volume, its SFTP public key and the sshd drop-in. On the host (over SSH,
pinned): duplicity >= 3, its SFTP private key and this server's pinned host key; then a probe
from the host into its chroot. The inventory is written last. The steps live in
agent/hostsetup/ (accounts, sshd, keys, tenant); see docs/backups-design.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent import execute, remote
from agent.config.load import (
    BUILTIN_DEFAULTS,
    HOST_NAME,
    check_host_entry,
    read_document,
    save_host,
)
from agent.errors import DupstackError, UsageError
from agent.execute import ANY_EXIT
from agent.files import write_atomic
from agent.hostsetup.accounts import account_exists, ensure_account, sftp_account, userdel_argv
from agent.hostsetup.keys import ensure_server_key, pin_host_key
from agent.hostsetup.sshd import ensure_sshd_dropin
from agent.hostsetup.tenant import (
    ensure_duplicity,
    install_tenant_files,
    probe_sftp,
    sftp_key_pair,
)
from agent.locks import host_lock
from agent.paths import ServerPaths
from agent.report import Report
from agent.repository import TENANT_KEY, TENANT_KNOWN_HOSTS
from agent.schedule import crontab

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostRequest:
    """What `dupctl host add` was asked; None: keep the inventory's (or default) value."""

    name: str
    address: str
    user: str | None = None
    port: int | None = None
    paths: tuple[str, ...] | None = None
    excludes: tuple[str, ...] | None = None
    host_key: str | None = None  # an OpenSSH public key line: pin this one
    accept_new_host_key: bool = False  # at a changed address: pin the key it offers
    install: bool = False  # install duplicity on the host if it lacks it
    server_address: str | None = None  # how hosts reach this server (inventory's by default)


@dataclass(frozen=True)
class Inventoried:
    """What the inventory holds now: its server section, defaults, and this host's own keys."""

    server: dict[str, Any]
    defaults: dict[str, Any]  # dupstack's defaults with the file's
    own: dict[str, Any]

    @classmethod
    def read(cls, paths: ServerPaths, name: str) -> Inventoried:
        if not paths.config_file.exists():
            return cls({}, dict(BUILTIN_DEFAULTS), {})
        document = read_document(paths)  # validated: errors name the file and the key
        defaults = {**BUILTIN_DEFAULTS, **(document.get("defaults") or {})}
        return cls(document["server"], defaults, document["hosts"].get(name) or {})

    def setting(self, key: str, given: Any) -> Any:
        """`given` if set, else the host's own value, else the default."""
        return given if given is not None else self.own.get(key, self.defaults[key])


def add_host(
    paths: ServerPaths, request: HostRequest, ssh: remote.Ssh, say: Callable[[str], None]
) -> Report:
    """Make `request.name` ready for backups; returns what changed (nothing on a rerun).
    Under the host's lock: never while a run of it uses its account and folder."""
    if not HOST_NAME.fullmatch(request.name):
        raise UsageError(
            f"bad host name {request.name!r}",
            hint="1 to 28 lowercase letters, digits or '-' (it becomes the account dup-NAME)",
        )
    _planned(paths, request)  # every refusal before anything is made, even the lock's file
    with host_lock(paths, request.name):
        return _add(paths, request, ssh, say)


def _planned(paths: ServerPaths, request: HostRequest) -> tuple[Inventoried, tuple[str, int]]:
    """The inventory as it is and how the host reaches this server, once the host's entry
    as the request makes it is checked (every refusal is here)."""
    inventoried = Inventoried.read(paths, request.name)
    server = server_endpoint(paths, inventoried, request)
    settings, server_section = planned_entry(inventoried, request)
    check_host_entry(paths, request.name, settings, server_section)
    return inventoried, server


def _add(
    paths: ServerPaths, request: HostRequest, ssh: remote.Ssh, say: Callable[[str], None]
) -> Report:
    inventoried, server = _planned(paths, request)  # again, as it is now under the lock
    if not os.path.ismount(paths.mount_point):
        raise UsageError(
            f"the backup volume is not mounted at {paths.mount_point}", hint="run dupctl init"
        )
    report = Report(say)
    say(f"dupctl host add {request.name} ({request.address})")
    ensure_server_key(ssh, report)
    target = remote.Target(
        request.name,
        request.address,
        inventoried.setting("user", request.user),
        inventoried.setting("port", request.port),
    )
    old_address = inventoried.own.get("address")
    moved_from = (
        remote.Target(request.name, old_address, target.user, target.port)
        if old_address and old_address != request.address
        else None
    )
    account = sftp_account(request.name)
    undo = Undo(paths, ssh, target, account)
    try:
        pin_host_key(ssh, target, request.host_key, report, moved_from=moved_from,
                     accept_new=request.accept_new_host_key)  # fmt: skip
        with remote.session(ssh, target) as tenant:
            ensure_duplicity(tenant, request.install, report)
            private, public = sftp_key_pair(tenant, account)
            ensure_account(paths, account, public, report)
            ensure_sshd_dropin(paths, server, report)
            try:
                install_tenant_files(paths, tenant, private, server, report)
                probe_sftp(tenant, account, server, report)
            except BaseException:
                if private is not None:  # a key made by this run: not left on the host
                    undo.tenant_files(tenant)
                raise
        record_host(paths, inventoried, request, report)
    except BaseException:
        for line in undo.run():
            say(f"  undone      {line}")
        raise
    changed = crontab.refresh(paths)
    report.step("schedule", f"{paths.hosts_cron_file}{'' if changed else ' (kept)'}", changed)
    say(
        f"host add {request.name}: {len(report.changes)} change(s): {', '.join(report.changes)}"
        if report.changes
        else f"host add {request.name}: nothing changed"
    )
    return report


def server_endpoint(
    paths: ServerPaths, inventoried: Inventoried, request: HostRequest
) -> tuple[str, int]:
    """(address, port) by which hosts reach this server: --server-address, or the inventory."""
    address = request.server_address or inventoried.server.get("address")
    if not address:
        raise UsageError(
            f"{paths.config_file} does not exist yet: how do hosts reach this server?",
            hint="give this server's private address once: --server-address ADDRESS",
        )
    return address, inventoried.server.get("port", 22)


def planned_entry(
    inventoried: Inventoried, request: HostRequest
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the host's own settings, the server section) as the inventory will hold them."""
    given = {
        "address": request.address,
        "user": request.user,
        "port": request.port,
        "paths": list(request.paths) if request.paths else None,
        "excludes": list(request.excludes) if request.excludes else None,
    }
    own = inventoried.own
    settings = {**own, **{key: value for key, value in given.items() if value is not None}}
    server = inventoried.server
    if request.server_address:
        server = {**server, "address": request.server_address}
    return settings, server


def record_host(
    paths: ServerPaths, inventoried: Inventoried, request: HostRequest, report: Report
) -> None:
    """Add the host to the inventory, keeping its other settings and every other host."""
    settings, server = planned_entry(inventoried, request)
    if settings == inventoried.own and server == inventoried.server:
        report.step("inventory", f"{paths.config_file} (kept)", False)
        return
    save_host(paths, {"name": request.name, **settings}, server=server)
    report.step("inventory", f"{request.name} in {paths.config_file}", True)


class Undo:
    """What a failed `host add` takes back: only what this run created (an account, its
    key file and empty folders, a new pin, the key it put on the host)."""

    def __init__(self, paths: ServerPaths, ssh: remote.Ssh, target: remote.Target, account: str):
        self.paths, self.ssh, self.target, self.account = paths, ssh, target, account
        self.had_account = account_exists(account)
        self.key_file = paths.sftp_keys_dir / account
        self.had_key_file = self.key_file.exists()
        self.chroot = paths.hosts_dir / account
        self.had_chroot = self.chroot.exists()
        self.had_pin = remote.pinned_key(ssh, target) is not None
        self.known_hosts = ssh.known_hosts.read_text() if ssh.known_hosts.exists() else None
        self.undone: list[str] = []

    def tenant_files(self, tenant: remote.Session) -> None:
        tenant.run(("rm", "-f", TENANT_KEY, TENANT_KNOWN_HOSTS), ok_codes=ANY_EXIT)
        self.undone.append(f"{TENANT_KEY} on {self.target.name}")

    def run(self) -> list[str]:
        """Take back what was made (best effort: a failure here must not hide the cause)."""
        steps = []
        now = self.ssh.known_hosts.read_text() if self.ssh.known_hosts.exists() else None
        saved = self.known_hosts
        if now != saved and saved is not None:  # the pins as they were, whatever changed
            steps.append(("host key pins", lambda: write_atomic(self.ssh.known_hosts, saved)))
        elif now != saved:
            steps.append(("host key pins", lambda: self.ssh.known_hosts.unlink(missing_ok=True)))
        if not self.had_key_file:
            steps.append((str(self.key_file), lambda: self.key_file.unlink(missing_ok=True)))
        if not self.had_chroot:
            steps.append((str(self.chroot), self._remove_empty_chroot))
        if not self.had_account and account_exists(self.account):
            steps.append((f"user {self.account}", lambda: execute.run(userdel_argv(self.account))))
        for what, step in steps:
            try:
                step()
                self.undone.append(what)
            except (OSError, DupstackError) as error:
                logger.warning("could not undo %s: %s", what, error)
        return self.undone

    def _remove_empty_chroot(self) -> None:
        for folder in (self.chroot / "backups", self.chroot):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

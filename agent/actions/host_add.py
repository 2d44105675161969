"""`dupctl host add`: make a tenant host ready for backups; idempotent.

On this server: the host's chrooted SFTP account `dup-NAME` (group dupstack-sftp, no shell),
its chroot on the volume, its SFTP public key and the sshd drop-in. On the host (over SSH,
pinned): duplicity >= 3, its SFTP private key and this server's pinned host key; then a probe
from the host into its chroot. The inventory is written last. The steps live in
agent/hostsetup/ (accounts, sshd, keys, tenant); see docs/backups-design.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent import remote
from agent.config.load import BUILTIN_DEFAULTS, HOST_NAME, read_document, save_host
from agent.errors import UsageError
from agent.hostsetup.accounts import ensure_account, sftp_account
from agent.hostsetup.keys import ensure_server_key, pin_host_key
from agent.hostsetup.sshd import ensure_sshd_dropin
from agent.hostsetup.tenant import (
    ensure_duplicity,
    install_tenant_files,
    probe_sftp,
    sftp_key_pair,
)
from agent.paths import ServerPaths
from agent.report import Report
from agent.schedule import crontab


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
    """Make `request.name` ready for backups; returns what changed (nothing on a rerun)."""
    if not HOST_NAME.fullmatch(request.name):
        raise UsageError(
            f"bad host name {request.name!r}",
            hint="1 to 28 lowercase letters, digits or '-' (it becomes the account dup-NAME)",
        )
    inventoried = Inventoried.read(paths, request.name)
    server = server_endpoint(paths, inventoried, request)
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
    pin_host_key(ssh, target, request.host_key, report, moved_from=moved_from,
                 accept_new=request.accept_new_host_key)  # fmt: skip
    account = sftp_account(request.name)
    with remote.session(ssh, target) as tenant:
        ensure_duplicity(tenant, request.install, report)
        private, public = sftp_key_pair(tenant, account)
        ensure_account(paths, account, public, report)
        ensure_sshd_dropin(paths, server, report)
        install_tenant_files(paths, tenant, private, server, report)
        probe_sftp(tenant, account, server, report)
    record_host(paths, inventoried, request, report)
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


def record_host(
    paths: ServerPaths, inventoried: Inventoried, request: HostRequest, report: Report
) -> None:
    """Add the host to the inventory, keeping its other settings and every other host."""
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
    if settings == own and server == inventoried.server:
        report.step("inventory", f"{paths.config_file} (kept)", False)
        return
    save_host(paths, {"name": request.name, **settings}, server=server)
    report.step("inventory", f"{request.name} in {paths.config_file}", True)

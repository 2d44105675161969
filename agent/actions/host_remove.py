"""`dupctl host remove`: forget a tenant host; its backups stay on the volume unless purged."""

from __future__ import annotations

import pwd
import shutil
from collections.abc import Callable

from agent import execute, remote
from agent.config.load import HOST_NAME, load_inventory
from agent.config.load import remove_host as remove_from_inventory
from agent.errors import UsageError
from agent.files import write_atomic
from agent.hostsetup.accounts import sftp_account, userdel_argv
from agent.locks import host_lock
from agent.paths import ServerPaths
from agent.report import Report
from agent.schedule import crontab


def remove_host(
    paths: ServerPaths, ssh: remote.Ssh, name: str, purge: bool, say: Callable[[str], None]
) -> Report:
    """Remove `name`'s account, SFTP key, host key pin and inventory entry (and, if `purge`,
    its backups). Removing a host that is not there changes nothing. Under the host's lock:
    HostBusy while a backup or prune of it runs (its account must not vanish mid-run)."""
    if not HOST_NAME.fullmatch(name):  # it names files and folders: nothing outside them
        raise UsageError(f"bad host name {name!r}", hint="dupctl host list shows the hosts")
    with host_lock(paths, name) as note, host_lock(paths, name, "offsite"):
        if note:
            say(f"host remove {name}: {note}")
        return _remove(paths, ssh, name, purge, say)


def _remove(
    paths: ServerPaths, ssh: remote.Ssh, name: str, purge: bool, say: Callable[[str], None]
) -> Report:
    report = Report(say)
    say(f"dupctl host remove {name}")
    account = sftp_account(name)
    inventory = load_inventory(paths) if paths.config_file.exists() else None
    # The account first, the inventory last: a step that fails leaves the host listed, and
    # running `host remove` again finishes what is left.
    try:
        pwd.getpwnam(account)
    except KeyError:
        pass
    else:
        execute.run(("pkill", "-KILL", "-u", account), ok_codes=(0, 1))  # its SFTP sessions
        execute.run(userdel_argv(account))
        report.step("account", f"user {account} removed", True)
    key_file = paths.sftp_keys_dir / account
    if key_file.exists():
        key_file.unlink()
        report.step("sftp key", f"{key_file} removed", True)
    chroot = paths.hosts_dir / account
    if chroot.exists():
        if purge:
            shutil.rmtree(chroot)
        report.step(
            "backups",
            f"{chroot} deleted" if purge else f"{chroot} kept (delete with --purge)",
            purge,
        )
    if inventory is not None and name in inventory.hosts:
        host = inventory.hosts[name]
        if remote.pinned_key(ssh, host) is not None:
            pins = remote.pinned_lines(ssh.known_hosts.read_text(), host, None)
            write_atomic(ssh.known_hosts, pins, 0o600)
            report.step("host key", f"pin of {host.address} removed", True)
        remove_from_inventory(paths, name)
        report.step("inventory", f"{name} removed from {paths.config_file}", True)
        if crontab.refresh(paths):
            report.step("schedule", f"{name}'s jobs removed from {paths.hosts_cron_file}", True)
    say(
        f"host remove {name}: {len(report.changes)} change(s): {', '.join(report.changes)}"
        if report.changes
        else f"host remove {name}: nothing to remove"
    )
    return report

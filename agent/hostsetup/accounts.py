"""The tenant hosts' SFTP accounts on this server: `dup-NAME` in group dupstack-sftp, no
shell, chrooted into its folder on the volume, one authorized key each (sshd reads it as the
account). Pure argv builders, and the step of `host add` that makes them so."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

from agent import execute, quota
from agent.files import write_atomic
from agent.hostsetup.keys import same_key
from agent.paths import ServerPaths
from agent.report import Report
from agent.sealing import reseal

SFTP_GROUP = "dupstack-sftp"


def sftp_account(name: str) -> str:
    return f"dup-{name}"


def account_exists(account: str) -> bool:
    try:
        pwd.getpwnam(account)
    except KeyError:
        return False
    return True


def groupadd_argv() -> tuple[str, ...]:
    return ("groupadd", "--system", SFTP_GROUP)


def useradd_argv(account: str) -> tuple[str, ...]:
    """An SFTP-only system account; '*' is an unusable password that is not a lock ('!'):
    sshd without PAM refuses locked accounts even with a valid key."""
    return (
        "useradd", "--system", "--user-group", "--groups", SFTP_GROUP,
        "--home-dir", "/", "--no-create-home", "--shell", "/usr/sbin/nologin",
        "--password", "*", account,
    )  # fmt: skip


def usermod_join_argv(account: str) -> tuple[str, ...]:
    return ("usermod", "--append", "--groups", SFTP_GROUP, account)


def userdel_argv(account: str) -> tuple[str, ...]:
    return ("userdel", account)


def ensure_account(paths: ServerPaths, account: str, public_key: str, report: Report) -> None:
    """The SFTP-only account, its chroot on the volume and its authorized key."""
    changes = []
    try:
        grp.getgrnam(SFTP_GROUP)
    except KeyError:
        execute.run(groupadd_argv())
        changes.append(f"group {SFTP_GROUP}")
    try:
        pwd.getpwnam(account)
        if account not in grp.getgrnam(SFTP_GROUP).gr_mem:
            execute.run(usermod_join_argv(account))
            changes.append(f"{account} joined {SFTP_GROUP}")
    except KeyError:
        execute.run(useradd_argv(account))
        changes.append(f"user {account}")
    gid = grp.getgrnam(account).gr_gid
    chroot = paths.hosts_dir / account
    if resealed := reseal(chroot / "backups", gid):  # a re-added host: its gid is new
        changes.append(f"{resealed} sealed file(s) given group {account}")
    for directory, group, mode in (
        (paths.hosts_dir, 0, 0o755),
        (chroot, 0, 0o755),  # sshd requires a root-owned chroot nobody else may write
        # Sticky: the account cannot delete root's files; writable only during its runs.
        (chroot / "backups", gid, quota.CLOSED),
    ):
        if _ensure_dir(directory, group, mode):
            changes.append(str(directory))
    _ensure_dir(paths.sftp_keys_dir.parent, 0, 0o755)
    _ensure_dir(paths.sftp_keys_dir, 0, 0o755)  # sshd reads it as the account
    key_file = paths.sftp_keys_dir / account
    current = key_file.read_text() if key_file.exists() else ""
    if not (current and same_key(current, public_key)):
        write_atomic(key_file, public_key + "\n", 0o644)
        changes.append(f"key {key_file}")
    report.step("account", "; ".join(changes) or f"{account} (kept)", bool(changes))


def _ensure_dir(path: Path, gid: int, mode: int) -> bool:
    """`path` as a directory owned by root:gid with `mode`; whether anything changed."""
    try:
        status = path.stat()
    except FileNotFoundError:
        path.mkdir()
    else:
        if (status.st_uid, status.st_gid, status.st_mode & 0o7777) == (0, gid, mode):
            return False
    os.chown(path, 0, gid)
    path.chmod(mode)
    return True

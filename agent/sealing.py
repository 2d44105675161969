"""Sealing a host's finished files on the volume: root:dup-H 0440, so the host can read its
sets but never change or delete them (the folder is sticky). A file its account still owns
is unsealed: a run wrote it and has not been checked yet (or is still writing it)."""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Sequence
from pathlib import Path

from agent.config.load import HostConfig
from agent.files import sync_dir
from agent.paths import ServerPaths
from agent.repository import backups_dir


def _files_owned_by(paths: ServerPaths, host: HostConfig, uid: int) -> list[str]:
    """Names of the regular files in the host's backups folder that `uid` owns."""
    try:
        entries = list(os.scandir(backups_dir(paths, host)))
    except FileNotFoundError:
        return []
    return sorted(
        entry.name
        for entry in entries
        if (info := entry.stat(follow_symlinks=False)).st_uid == uid and stat.S_ISREG(info.st_mode)
    )


def unsealed(paths: ServerPaths, host: HostConfig) -> list[str]:
    """Names of the regular files in the host's backups folder that its account still owns."""
    try:
        uid = pwd.getpwnam(host.sftp_user).pw_uid
    except KeyError:
        return []
    return _files_owned_by(paths, host, uid)


def sealed(paths: ServerPaths, host: HostConfig) -> list[str]:
    """Names of the host's files already in its history (root's, sealed)."""
    return _files_owned_by(paths, host, 0)


def seal(paths: ServerPaths, host: HostConfig) -> list[str]:
    """Make every unsealed file root:dup-H 0440, and on disk; their names.

    On disk: each file and the folder are fsynced first. The host's SFTP session never
    syncs, and a set reported done must survive what follows: ext4 gone read-only after a
    disk error (or a power cut) a few seconds later loses what was only in the page cache,
    leaving the set's files empty."""
    gid = pwd.getpwnam(host.sftp_user).pw_gid
    names = unsealed(paths, host)
    folder = backups_dir(paths, host)
    for name in names:
        fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fchown(fd, 0, gid)
            os.fchmod(fd, 0o440)
            os.fsync(fd)
        finally:
            os.close(fd)
    if names:
        sync_dir(folder)
    return names


def reseal(folder: Path, gid: int) -> int:
    """Give the sealed files in a host's `folder` its account's group `gid` (a re-added host
    gets a new gid; files of the old one would be unreadable to it); how many changed."""
    changed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISREG(info.st_mode) and info.st_uid == 0 and info.st_gid != gid:
            os.chown(entry.path, 0, gid, follow_symlinks=False)
            changed += 1
    return changed


def set_kind(names: Sequence[str]) -> str | None:
    """full or incremental, from the names of a set's files (duplicity-full.*, duplicity-inc.*)."""
    if any(name.startswith("duplicity-full.") for name in names):
        return "full"
    return "incremental" if any(name.startswith("duplicity-inc.") for name in names) else None

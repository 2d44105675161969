"""Format and mount the volume: argv builders plus the mount table lookup."""

from __future__ import annotations

import os
from pathlib import Path

from agent.volume.probe import FS_LABEL, FS_TYPE


def mkfs_argv(device: Path) -> tuple[str, ...]:
    # -m 0: a backup volume needs no blocks reserved for root.
    return ("mkfs.ext4", "-q", "-m", "0", "-L", FS_LABEL, str(device))


def mount_argv(device: Path, mount_point: Path) -> tuple[str, ...]:
    return ("mount", "-t", FS_TYPE, str(device), str(mount_point))


def umount_argv(mount_point: Path) -> tuple[str, ...]:
    return ("umount", str(mount_point))


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


def mounted_device_number(mount_point: Path, mountinfo: str) -> int | None:
    """The st_rdev of what is mounted at `mount_point` per /proc/self/mountinfo, else None."""
    target = str(mount_point.resolve())
    found = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and _unescape(fields[4]) == target:
            major, minor = fields[2].split(":")
            found = os.makedev(int(major), int(minor))  # the last one is on top
    return found


def read_mountinfo() -> str:
    return Path("/proc/self/mountinfo").read_text()

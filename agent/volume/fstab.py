"""The volume's /etc/fstab entry: by UUID, and `nofail` so a missing volume never blocks boot."""

from __future__ import annotations

from pathlib import Path

from agent.volume.probe import FS_TYPE

MARKER = "# dupstack backup volume (written by dupctl init)"
OPTIONS = "defaults,nofail,x-systemd.device-timeout=30s"


def fstab_entry(uuid: str, mount_point: Path) -> str:
    return f"UUID={uuid} {mount_point} {FS_TYPE} {OPTIONS} 0 2"


def with_volume_entry(fstab: str, uuid: str, mount_point: Path) -> str:
    """`fstab` with exactly one entry for `mount_point`: ours (others for it are dropped)."""
    kept = [
        line
        for line in fstab.splitlines()
        if line != MARKER
        and not (
            not line.lstrip().startswith("#")
            and len(line.split()) > 1
            and line.split()[1] == str(mount_point)
        )
    ]
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join([*kept, MARKER, fstab_entry(uuid, mount_point)]) + "\n"

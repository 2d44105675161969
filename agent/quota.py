"""Per-host room on the volume, enforced by the server (the kernel may lack quota support).

- A host's folder takes writes only while a run of that host holds its lock (1770); between
  runs it is 1750, so nothing can be added over its SFTP account then: neither filler nor
  planted files.
- Before a run: the host's sets must be under its limit, and the volume must have more free
  space than the inventory's `reserve`. The limit is the host's `quota`, or, for a host with
  none, an equal share of the volume less the reserve and the quotas given: no host can take
  the room another needs, unless the quotas given add up to more than the volume.
- During the run a watchdog reads both five times a second and stops the host's duplicity
  (over a connection of its own) the moment either is crossed, and the run checks again when
  duplicity ends: what such a run wrote is removed, that host fails alone, and every other
  host keeps the reserve for its metadata.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent import execute, files, stop
from agent.errors import DupstackError, QuotaExceeded, read_only_volume

OPEN, CLOSED = 0o1770, 0o1750  # the host's group may create files / only read
INTERVAL = 0.2  # seconds between the watchdog's looks


def usage(folder: Path) -> int:
    """Bytes the entries in `folder` take on disk (one that vanishes meanwhile counts 0)."""
    total = 0
    for entry in os.scandir(folder):
        try:
            total += entry.stat(follow_symlinks=False).st_blocks * 512
        except OSError:
            continue
    return total


def tree_usage(folder: Path) -> int:
    """Bytes everything below `folder` takes on disk (none: 0): a host's quarantine, whose
    files were its own and still take room."""
    total = 0
    for top, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
            except OSError:
                continue
    return total


def free(folder: Path) -> int:
    volume = os.statvfs(folder)
    return volume.f_bavail * volume.f_frsize


def shown(size: int) -> str:
    for unit, factor in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}iB"
    return f"{size} B"


def default_reserve(folder: Path) -> int:
    """256 MiB, or a tenth of a small volume."""
    volume = os.statvfs(folder)
    return min(256 << 20, volume.f_blocks * volume.f_frsize // 10)


@dataclass(frozen=True)
class Limit:
    """The most a host's sets (and its quarantine) may take on the volume."""

    size: int
    given: bool  # its `quota`; False: an equal share of what the quotas given leave
    sharing: int = 0  # hosts without a quota that split the rest (for a share)


def limit(host: str, quotas: Mapping[str, int | None], folder: Path, reserve: int | None) -> Limit:
    """`host`'s limit among the inventory's `quotas` (host -> quota or None), on the volume
    `folder` is on: its quota, or its share of the volume less the reserve and the quotas
    given, floored at 0 (quotas given that add up to the whole volume leave the rest none)."""
    if (given := quotas[host]) is not None:
        return Limit(given, True)
    volume = os.statvfs(folder)
    reserve = default_reserve(folder) if reserve is None else reserve
    rest = volume.f_blocks * volume.f_frsize - reserve - sum(q for q in quotas.values() if q)
    sharing = sum(1 for q in quotas.values() if q is None)
    return Limit(max(0, rest // sharing), False, sharing)


def over(
    host: str, folder: Path, room: Limit, reserve: int | None, held: int = 0
) -> DupstackError | None:
    """Why the host may not write more now, or None (`reserve` None: the default). `held`:
    the bytes of its quarantine, counted as its own (a tenant planting files run after run
    would fill the volume through it otherwise). A volume gone read-only is a reason too
    (the host's duplicity would retry each upload for minutes), and so is a SIGTERM."""
    if stop.REQUESTED.is_set():  # SIGTERM: ended as a run over its quota is
        return stop.stopped(f"{host}'s run was stopped")
    if files.read_only(folder):
        return read_only_volume(_mount_of(folder))
    reserve = default_reserve(folder) if reserve is None else reserve
    if (used := usage(folder)) + held >= room.size:
        also = f" and its quarantine {shown(held)}" if held else ""
        looked = "; what is in its quarantine (dupctl status) may be deleted once looked at"
        if room.given:
            return QuotaExceeded(
                f"{host} is over its quota: its sets take {shown(used)}{also} of "
                f"{shown(room.size)}",
                hint=f"prune it (dupctl prune {host}), or raise hosts.{host}.quota in the "
                f"inventory{looked if held else ''}",
            )
        return QuotaExceeded(
            f"{host} is over its share of the volume: its sets take {shown(used)}{also} of "
            f"{shown(room.size)} (the volume less the reserve and the quotas given, split "
            f"between the {room.sharing} host(s) without a quota)",
            hint=f"prune it (dupctl prune {host}), give it a quota (hosts.{host}.quota in the "
            f"inventory) and the others less, or grow the volume{looked if held else ''}",
        )
    if (left := free(folder)) < reserve:
        return QuotaExceeded(
            f"the backup volume has {shown(left)} free, less than the reserve of "
            f"{shown(reserve)} kept for every host's metadata, while {host}'s sets take "
            f"{shown(used)} of its {'quota' if room.given else 'share'} of "
            f"{shown(room.size)}: {host} was stopped",
            hint="something besides the hosts' sets fills the volume, or the quotas given add "
            "up to more than it holds (dupctl status): free room, lower quotas, or grow it",
        )
    return None


@contextmanager
def write_window(folder: Path, account: str) -> Iterator[None]:
    """The host's folder takes new files while this lasts (its run), only then. At its end,
    whatever happened: closed, the account's SFTP sessions ended (a handle opened during the
    window must not write on), and what it still owns made read-only (it cannot chmod it
    back: setstat is denied)."""
    os.chmod(folder, OPEN)
    try:
        yield
    finally:
        close(folder, account)


def close(folder: Path, account: str) -> None:
    """Close the host's folder for writes, here and now (also one a killed run left open).
    On a volume gone read-only nothing can be written, by the host either: its sessions
    end, the modes wait for the next run (the run's own error says why)."""
    try:
        os.chmod(folder, CLOSED)
    except OSError as error:
        if error.errno != errno.EROFS:
            raise
        execute.run(("pkill", "-KILL", "-u", account), ok_codes=(0, 1))
        return
    execute.run(("pkill", "-KILL", "-u", account), ok_codes=(0, 1))  # 1: none was running
    uid = pwd.getpwnam(account).pw_uid
    for entry in os.scandir(folder):
        try:
            info = entry.stat(follow_symlinks=False)
            if info.st_uid == uid and stat.S_ISREG(info.st_mode) and info.st_mode & 0o222:
                os.chmod(entry.path, 0o440)
        except OSError:
            continue


def _mount_of(folder: Path) -> Path:
    """The mount point `folder` is on (the volume's, unless something is mounted below)."""
    while not os.path.ismount(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def is_open(folder: Path) -> bool:
    return stat.S_IMODE(folder.stat().st_mode) == OPEN


@contextmanager
def watchdog(
    host: str,
    folder: Path,
    room: Limit,
    reserve: int | None,
    stop: Callable[[], None],
    held: int = 0,
) -> Iterator[Callable[[], DupstackError | None]]:
    """Call `stop` once the host goes over; yields what it found (None while all is well)."""
    found: list[DupstackError] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(INTERVAL):
            reason: DupstackError | None
            try:
                reason = over(host, folder, room, reserve, held)
            except OSError as error:  # the folder itself is gone or unreadable: stop too
                reason = QuotaExceeded(f"{host}: cannot measure its folder: {error}")
            if reason:  # keep stopping until the run ends: a host may not cooperate
                if not found:
                    found.append(reason)
                stop()

    thread = threading.Thread(target=watch, name=f"quota-{host}", daemon=True)
    thread.start()
    try:
        yield lambda: found[0] if found else None
    finally:
        done.set()
        thread.join()

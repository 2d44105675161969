"""One lock per host (`state_dir/locks/HOST.lock`), and one for its offsite copies
(`HOST.offsite.lock`): a flock, and the pid of its holder.

The kernel drops a flock when its holder dies, even by `kill -9`: a free lock whose file
still names a pid is what a killed run left behind, and is taken over with a note.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from agent.errors import HostBusy
from agent.paths import ServerPaths


@contextlib.contextmanager
def host_lock(paths: ServerPaths, host: str, part: str = "") -> Iterator[str | None]:
    """Hold `host`'s lock (with `part` "offsite": its offsite copies' own, so that a long
    push or an offsite prune never keeps its backups and prunes waiting); yields a note when
    a killed run's lock was cleared.

    HostBusy (naming the holder's pid) if another run holds it."""
    directory = paths.state_dir / "locks"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / f"{host}{'.' + part if part else ''}.lock", os.O_RDWR | os.O_CREAT,
                 0o600)  # fmt: skip
    with os.fdopen(fd, "r+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock.read().strip() or "unknown"
            doing = f"an offsite push or prune of {host}" if part else "another dupctl run"
            raise HostBusy(
                f"{host}: {doing} (pid {holder}) holds {lock.name}",
                hint="wait for it to finish (see `dupctl status`), then rerun",
            ) from None
        stale = lock.read().strip()
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        try:
            yield f"stale lock of pid {stale} (no longer running) cleared" if stale else None
        finally:
            lock.seek(0)
            lock.truncate()


def is_held(paths: ServerPaths, host: str) -> bool:
    """True while a dupctl run holds `host`'s lock (a probe: it takes nothing)."""
    try:
        fd = os.open(paths.state_dir / "locks" / f"{host}.lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False

"""Atomic, durable, permission-exact file writes for root-only material."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes | str, mode: int = 0o600) -> bool:
    """Write `data` to `path` (root-owned, `mode`) by rename; False if it already held it."""
    content = data.encode() if isinstance(data, str) else data
    if path.exists() and path.read_bytes() == content and (path.stat().st_mode & 0o7777) == mode:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        os.fchown(fd, 0, 0)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _sync_dir(path.parent)
    return True


def _sync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (a crash must not lose the escrow)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dir(path: Path) -> None:
    """Create `path` (and parents) and make it root-only."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, 0, 0)
    path.chmod(0o700)


def lock_down_tree(top: Path) -> None:
    """Make everything under `top` root-owned: directories 0700, files 0600."""
    for directory, _subdirs, files in os.walk(top):
        for name in [directory, *(os.path.join(directory, f) for f in files)]:
            if os.path.islink(name):
                continue
            os.chown(name, 0, 0)
            os.chmod(name, 0o700 if os.path.isdir(name) else 0o600)


def shred(path: Path) -> None:
    """Overwrite `path` with zeros, then remove it."""
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.write(b"\0" * size)
        handle.flush()
        os.fsync(handle.fileno())
    path.unlink()


def lock_down_modes(top: Path) -> None:
    """Take group and other permissions off everything under `top` (owners kept); nothing if
    it does not exist."""
    if not top.exists():
        return
    for directory, _subdirs, files in os.walk(top):
        for name in [directory, *(os.path.join(directory, f) for f in files)]:
            if not os.path.islink(name):
                mode = os.stat(name).st_mode & 0o7777
                if mode & 0o077:
                    os.chmod(name, mode & 0o7700)

"""Atomic, durable, permission-exact file writes for root-only material."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from agent.errors import ConfigError


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
    sync_dir(path.parent)
    return True


def sync_dir(directory: Path) -> None:
    """Make the names in `directory` durable (a crash must not lose the escrow, or a set)."""
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


def read_only(folder: Path) -> bool:
    """Whether nothing can be written on `folder`'s filesystem now: mounted read-only, or ext4
    gone read-only after an error, whose mount flags still say rw (`emergency_ro`): found by
    a file with no name, never linked. Another failure (no room, no inodes) is not this."""
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        return True
    try:
        os.close(os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o600))
    except OSError as error:
        return error.errno == errno.EROFS
    return False


def is_utf8(name: str) -> bool:
    """False for a name holding bytes that are not UTF-8 (surrogate escapes): duplicity
    cannot restore into it, nor SSH carry it as text."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_small(path: Path, limit: int) -> str:
    """The text of `path`, a regular file of at most `limit` bytes: OSError otherwise (a
    FIFO would block, /dev/zero never ends)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit >> 10} KiB", str(path))
    return data.decode(errors="replace")


def read_secret_text(path: Path, key: str, holds: str, limit: int, example: str) -> str:
    """The text of a secrets file the inventory names at `key` (apprise URLs, offsite
    credentials): ConfigError, naming the file and the key, unless it is a regular file of
    root's that nobody else may read. Opened without blocking (a FIFO), read up to `limit`;
    `holds` says what it holds ("its URLs hold tokens"), `example` how to write one."""
    where = f"{path} ({key})"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise ConfigError(
            f"{where} does not exist", hint=f"{example}, then chmod 600 {path}"
        ) from None
    except OSError as error:
        raise ConfigError(f"{where}: cannot read: {error.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{where} is not a regular file", hint=f"write {path} as a file")
        if info.st_uid != 0:
            raise ConfigError(
                f"{where} is owned by uid {info.st_uid}, not root: {holds}",
                hint=f"chown root:root {path} && chmod 600 {path}",
            )
        if (mode := stat.S_IMODE(info.st_mode)) & 0o077:
            raise ConfigError(
                f"{where} may be read by group or others (mode {mode:04o}): {holds}",
                hint=f"chmod 600 {path}",
            )
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ConfigError(f"{where} is larger than {limit // 1024} KiB")
    try:
        return data.decode()
    except UnicodeDecodeError as error:
        raise ConfigError(f"{where}: not UTF-8 text (byte {error.start})") from None


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""Re-apply a metadata record (fsmeta_capture.py) to files duplicity has just restored.

Run by dupctl as root where the files are (this server, or the host) as `python3 -c SOURCE`,
with a JSON request on stdin: {"record": DIR, "dest": D, "within": W}, each base64 bytes. A
recorded name N (relative to the host's "/") was restored at D/N; only names equal to W or
below it (W empty: all) were restored. In this order, since each step undoes part of the
previous ones otherwise: holes punched back (`fallocate --dig-holes`; it clears set-id bits
and file capabilities and moves mtime, so mode, owner and times are put back), hard links
re-made (a temporary link renamed over each OTHER; its folder's times put back), then the
extended attributes set (ACLs and capabilities among them).

The record comes from the host, and so do the restored files: both are the tenant's. So a
name is refused unless it is relative with no empty, "." or ".." part, and every name is
resolved below D one folder at a time without following any symbolic link (O_NOFOLLOW,
directory fds), so nothing outside D is ever read, linked, changed or replaced. Two names
are linked only if both are regular files with the same contents, owner, mode and mtime.

It prints a JSON report, always (a failure of its own is one entry): counts, each name
(base64) with what could not be re-applied and why (and, for a hard link, the name it
should have been linked to), and the links not made because the set holds them apart.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import subprocess
import sys

DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
UNSAFE = "unsafe name (absolute, or with an empty, '.' or '..' part): not followed"


def unquote(text: bytes) -> bytes:
    """attr's unquote(): \\ooo octal escapes back to bytes."""
    out, i = bytearray(), 0
    while i < len(text):
        if (
            text[i] == 0x5C
            and len(text) - i > 3
            and all(48 <= c <= 55 for c in text[i + 1 : i + 4])
        ):
            out.append(int(text[i + 1 : i + 4], 8) & 0xFF)
            i += 4
        else:
            out.append(text[i])
            i += 1
    return bytes(out)


def value_of(text: bytes) -> bytes:
    """A getfattr value: 0s base64, 0x hex, or "quoted" text (ValueError if malformed)."""
    if text.startswith((b"0s", b"0S")):
        return base64.b64decode(text[2:], validate=True)
    if text.startswith((b"0x", b"0X")):
        return bytes.fromhex(text[2:].decode())
    if text.startswith(b'"') and text.endswith(b'"'):
        return unquote(text[1:-1])
    return text


def parse_xattrs(data: bytes) -> list[tuple[bytes, list[tuple[bytes, bytes]]]]:
    """[(name, [(key, raw value)])]: the values are decoded when set, one by one."""
    files: list[tuple[bytes, list[tuple[bytes, bytes]]]] = []
    for line in data.split(b"\n"):
        if line.startswith(b"# file: "):
            files.append((unquote(line[8:]), []))
        elif line and not line.startswith(b"#") and files:
            name, _, value = line.partition(b"=")
            files[-1][1].append((unquote(name), value))
    return files


def nul_list(data: bytes) -> list[bytes]:
    return [name for name in data.split(b"\0") if name]


class Unsafe(Exception):
    """A recorded name that could lead outside the restored tree."""


class Tree:
    """The restored tree at `dest`: names resolved below it, no link followed."""

    def __init__(self, dest: bytes) -> None:
        self.root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def parent(self, name: bytes) -> tuple[int, bytes]:
        """(an fd of NAME's folder, NAME's last part), to be closed by the caller unless it
        is the root's; Unsafe for a name that is not plainly below the root, OSError (ELOOP,
        ENOTDIR) where a folder on the way is a link or no folder."""
        parts = name.split(b"/")
        if name == b"." or any(part in (b"", b".", b"..") for part in parts) or b"\0" in name:
            raise Unsafe(name)
        fd = self.root
        try:
            for part in parts[:-1]:
                below = os.open(part, DIRECTORY, dir_fd=fd)
                if fd != self.root:
                    os.close(fd)
                fd = below
        except BaseException:
            if fd != self.root:
                os.close(fd)
            raise
        return fd, parts[-1]

    def done(self, fd: int) -> None:
        if fd != self.root:
            os.close(fd)

    def lstat(self, name: bytes) -> os.stat_result:
        if name == b".":
            return os.stat(self.root)
        fd, base = self.parent(name)
        try:
            return os.stat(base, dir_fd=fd, follow_symlinks=False)
        finally:
            self.done(fd)

    def open_regular(self, name: bytes, flags: int) -> int:
        """An fd of the regular file NAME (OSError if it is anything else)."""
        fd, base = self.parent(name)
        try:  # never opened unless regular: opening a device may do something
            if not stat.S_ISREG(os.stat(base, dir_fd=fd, follow_symlinks=False).st_mode):
                raise OSError(0, "not a regular file")
            opened = os.open(base, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
        finally:
            self.done(fd)
        if not stat.S_ISREG(os.fstat(opened).st_mode):  # swapped meanwhile
            os.close(opened)
            raise OSError(0, "not a regular file")
        return opened


def same_contents(a: int, b: int) -> bool:
    """Whether two open regular files hold the same bytes, owner, mode and mtime."""
    first, second = os.fstat(a), os.fstat(b)
    keys = ("st_size", "st_mode", "st_uid", "st_gid", "st_mtime_ns")
    if any(getattr(first, key) != getattr(second, key) for key in keys):
        return False
    os.lseek(a, 0, os.SEEK_SET)
    os.lseek(b, 0, os.SEEK_SET)
    while True:
        chunk = os.read(a, 1 << 20)
        if chunk != os.read(b, 1 << 20):
            return False
        if not chunk:
            return True


def main() -> None:
    request = {key: base64.b64decode(value) for key, value in json.load(sys.stdin).items()}
    record, dest, within = request["record"], request["dest"], request["within"].strip(b"/")
    if within == b".":  # the root: everything
        within = b""
    report: dict[str, object] = {"record": False, "xattrs": 0, "hardlinks": 0, "sparse": 0}
    failed: list[list[str]] = []
    apart: list[list[str]] = []
    absent: set[bytes] = set()
    report["failed"], report["not_captured"], report["apart"] = failed, [], apart
    try:
        apply(record, dest, within, report, failed, apart, absent)
    except Exception as error:  # told as the one thing that failed, never a traceback
        failed.append([base64.b64encode(within or b".").decode(), "the record",
                       f"{type(error).__name__}: {error}"])  # fmt: skip
    report["absent"] = [base64.b64encode(name).decode() for name in sorted(absent)]
    json.dump(report, sys.stdout)


def apply(
    record: bytes,
    dest: bytes,
    within: bytes,
    report: dict[str, object],
    failed: list[list[str]],
    apart: list[list[str]],
    absent: set[bytes],
) -> None:
    tree = Tree(dest)
    inner = record.startswith(dest.rstrip(b"/") + b"/")  # read from the restored tree: no links
    records = Tree(record) if not inner else None
    below = record[len(dest.rstrip(b"/")) + 1 :]

    def b64(name: bytes) -> str:
        return base64.b64encode(name).decode()

    def fail(name: bytes, what: str, error: BaseException, *peer: bytes) -> None:
        why = UNSAFE if isinstance(error, Unsafe) else (
            getattr(error, "strerror", None) or str(error) or type(error).__name__
        )  # fmt: skip
        failed.append([b64(name), what, why, *map(b64, peer)])

    def inside(name: bytes) -> bool:
        return not within or name == within or name.startswith(within + b"/")

    def read(part: bytes) -> bytes | None:
        try:
            fd = tree.open_regular(below + b"/" + part, os.O_RDONLY) if inner else (
                records.open_regular(part, os.O_RDONLY)  # type: ignore[union-attr]
            )  # fmt: skip
        except (FileNotFoundError, NotADirectoryError):
            return None
        with os.fdopen(fd, "rb") as file:
            return file.read()

    def present(name: bytes) -> bool:
        try:
            tree.lstat(name)
        except FileNotFoundError:
            absent.add(name)
            return False
        except (Unsafe, OSError):
            return True  # not reachable safely: the step that needs it says why
        return True

    summary = read(b"summary.json")
    if summary is None:
        return
    report["record"] = True
    report["not_captured"] = [
        entry for entry in json.loads(summary)["errors"]
        if inside(base64.b64decode(entry[0]))
    ]  # fmt: skip

    for name in nul_list(read(b"sparse") or b""):
        if not inside(name) or not present(name):
            continue
        try:
            fd = tree.open_regular(name, os.O_RDWR)
        except (Unsafe, OSError) as error:
            fail(name, "holes", error)
            continue
        try:
            info = os.fstat(fd)
            done = subprocess.run(["fallocate", "--dig-holes", f"/dev/fd/{fd}"],
                                  capture_output=True, pass_fds=(fd,))  # fmt: skip
            os.chown(fd, info.st_uid, info.st_gid)
            os.chmod(fd, stat.S_IMODE(info.st_mode))
            os.utime(fd, ns=(info.st_atime_ns, info.st_mtime_ns))
            if done.returncode:
                why = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["failed"]
                failed.append([b64(name), "holes", why[0]])
            else:
                report["sparse"] += 1  # type: ignore[operator]
        except OSError as error:
            fail(name, "holes", error)
        finally:
            os.close(fd)

    pairs = nul_list(read(b"hardlinks") or b"")
    groups: dict[bytes, list[bytes]] = {}
    for index in range(0, len(pairs) - 1, 2):  # FIRST, OTHER pairs
        groups.setdefault(pairs[index], [pairs[index]]).append(pairs[index + 1])

    def link(first: bytes, other: bytes) -> None:
        """OTHER made a hard link of FIRST, if both are regular files alike in all but name."""
        source = target = -1
        folders: list[int] = []
        try:
            source = tree.open_regular(first, os.O_RDONLY)
            target = tree.open_regular(other, os.O_RDONLY)
            if os.fstat(source).st_ino == os.fstat(target).st_ino:
                return
            if not same_contents(source, target):  # changed between the record and the backup
                apart.append([base64.b64encode(other).decode(), base64.b64encode(first).decode(),
                              "the set holds them as different files"])  # fmt: skip
                return
            from_fd, from_base = tree.parent(first)
            folders.append(from_fd)
            to_fd, to_base = tree.parent(other)
            folders.append(to_fd)
            times = os.stat(to_fd)
            temporary = b".dupstack-link-" + secrets.token_hex(8).encode()
            os.link(
                from_base, temporary, src_dir_fd=from_fd, dst_dir_fd=to_fd, follow_symlinks=False
            )
            try:
                os.rename(temporary, to_base, src_dir_fd=to_fd, dst_dir_fd=to_fd)
            finally:
                try:
                    os.unlink(temporary, dir_fd=to_fd)
                except FileNotFoundError:
                    pass  # renamed, as it should be
                os.utime(to_fd, ns=(times.st_atime_ns, times.st_mtime_ns))
            report["hardlinks"] += 1  # type: ignore[operator]
        except (Unsafe, OSError) as error:
            fail(other, "hard link to", error, first)
        finally:
            for fd in (source, target):
                if fd >= 0:
                    os.close(fd)
            for fd in folders:
                tree.done(fd)

    for group in groups.values():
        members = [name for name in group if inside(name) and present(name)]
        outside = [name for name in group if not inside(name)]
        if members and outside:
            apart.append([b64(members[0]), b64(outside[0]), "outside the restored path"])
        for other in members[1:]:
            link(members[0], other)

    for name, attributes in parse_xattrs(read(b"xattrs") or b""):
        if not inside(name) or not present(name):
            continue
        for key, raw in attributes:
            what = "xattr " + key.decode(errors="backslashreplace")
            try:
                value = value_of(raw)
                if name == b".":
                    os.setxattr(tree.root, key, value)
                    report["xattrs"] += 1  # type: ignore[operator]
                    continue
                fd, base = tree.parent(name)
                try:  # the folder by fd, the name itself never followed
                    os.setxattr(b"/proc/self/fd/%d/%s" % (fd, base), key, value,
                                follow_symlinks=False)  # fmt: skip
                finally:
                    tree.done(fd)
                report["xattrs"] += 1  # type: ignore[operator]
            except (Unsafe, OSError, ValueError) as error:
                fail(name, what, error)


main()

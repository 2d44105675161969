"""Re-apply a metadata record (fsmeta_capture.py) to files duplicity has just restored.

Run by dupctl as root where the files are (this server, or the host) as `python3 -c SOURCE`,
with a JSON request on stdin: {"record": DIR, "dest": D, "within": W}, each base64 bytes. A
recorded name N (relative to the host's "/") was restored at D/N; only names equal to W or
below it (W empty: all) were restored. In this order, since each step undoes part of the
previous ones otherwise: holes punched back (`fallocate --dig-holes`; it clears set-id bits
and file capabilities and moves mtime, so mode, owner and times are put back), hard links
re-made (a temporary link renamed over each OTHER; its folder's times put back), then the
extended attributes set (ACLs and capabilities among them).

It prints a JSON report: counts, and each name (base64) with what could not be re-applied
and why (and, for a hard link, the name it should have been linked to).
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys


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
    """A getfattr value: 0s base64, 0x hex, or "quoted" text."""
    if text.startswith((b"0s", b"0S")):
        return base64.b64decode(text[2:])
    if text.startswith((b"0x", b"0X")):
        return bytes.fromhex(text[2:].decode())
    if text.startswith(b'"') and text.endswith(b'"'):
        return unquote(text[1:-1])
    return text


def parse_xattrs(data: bytes) -> list[tuple[bytes, list[tuple[bytes, bytes]]]]:
    files: list[tuple[bytes, list[tuple[bytes, bytes]]]] = []
    for line in data.split(b"\n"):
        if line.startswith(b"# file: "):
            files.append((unquote(line[8:]), []))
        elif line and not line.startswith(b"#") and files:
            name, _, value = line.partition(b"=")
            files[-1][1].append((unquote(name), value_of(value)))
    return files


def nul_list(data: bytes) -> list[bytes]:
    return [name for name in data.split(b"\0") if name]


def main() -> None:
    request = {key: base64.b64decode(value) for key, value in json.load(sys.stdin).items()}
    record, dest, within = request["record"], request["dest"], request["within"].strip(b"/")
    if within == b".":  # the root: everything
        within = b""
    report: dict[str, object] = {"record": False, "xattrs": 0, "hardlinks": 0, "sparse": 0}
    failed: list[list[str]] = []
    absent: set[bytes] = set()
    report["failed"], report["not_captured"] = failed, []

    def b64(name: bytes) -> str:
        return base64.b64encode(name).decode()

    def inside(name: bytes) -> bool:
        return not within or name == within or name.startswith(within + b"/")

    def target(name: bytes) -> bytes:
        return os.path.join(dest, name) if name != b"." else dest

    def read(name: bytes) -> bytes | None:
        try:
            with open(os.path.join(record, name), "rb") as file:
                return file.read()
        except FileNotFoundError:
            return None

    def present(name: bytes) -> bool:
        if os.path.lexists(target(name)):
            return True
        absent.add(name)
        return False

    summary = read(b"summary.json")
    if summary is None:
        json.dump(report, sys.stdout)
        return
    report["record"] = True
    report["not_captured"] = [
        entry for entry in json.loads(summary)["errors"]
        if inside(base64.b64decode(entry[0]))
    ]  # fmt: skip

    for name in nul_list(read(b"sparse") or b""):
        if not inside(name) or not present(name):
            continue
        path = target(name)
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            continue
        done = subprocess.run(["fallocate", "--dig-holes", path], capture_output=True)
        try:
            os.chown(path, info.st_uid, info.st_gid)
            os.chmod(path, stat.S_IMODE(info.st_mode))
            os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
        except OSError as error:
            failed.append([b64(name), "mode after holes", error.strerror or str(error)])
        if done.returncode:
            why = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["failed"]
            failed.append([b64(name), "holes", why[0]])
        else:
            report["sparse"] += 1  # type: ignore[operator]

    pairs = nul_list(read(b"hardlinks") or b"")
    groups: dict[bytes, list[bytes]] = {}
    for index in range(0, len(pairs) - 1, 2):  # FIRST, OTHER pairs
        groups.setdefault(pairs[index], [pairs[index]]).append(pairs[index + 1])
    for group in groups.values():
        members = [name for name in group if inside(name) and present(name)]
        for other in members[1:]:
            source, path = target(members[0]), target(other)
            try:
                if os.lstat(source).st_ino == os.lstat(path).st_ino:
                    continue
                folder = os.path.dirname(path)
                times = os.stat(folder)
                temporary = os.path.join(folder, b".dupstack-link-%d" % os.getpid())
                os.link(source, temporary)
                os.rename(temporary, path)
                os.utime(folder, ns=(times.st_atime_ns, times.st_mtime_ns))
                report["hardlinks"] += 1  # type: ignore[operator]
            except OSError as error:
                failed.append([b64(other), "hard link to", error.strerror or str(error),
                               b64(members[0])])  # fmt: skip

    for name, attributes in parse_xattrs(read(b"xattrs") or b""):
        if not inside(name) or not present(name):
            continue
        for key, value in attributes:
            try:
                os.setxattr(target(name), key, value, follow_symlinks=False)
                report["xattrs"] += 1  # type: ignore[operator]
            except OSError as error:
                failed.append([b64(name), "xattr " + key.decode(errors="backslashreplace"),
                               error.strerror or str(error)])  # fmt: skip
    report["absent"] = [b64(name) for name in sorted(absent)]
    json.dump(report, sys.stdout)


main()

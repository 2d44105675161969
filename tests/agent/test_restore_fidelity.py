"""Restore fidelity: a tree with everything duplicity alone drops or mangles comes back
identically, both into a folder on the server and onto the host, or each loss is named.

One fleet: `bs` and the tenant `fid1`, whose /opt/fid holds hard links, extended attributes,
POSIX ACLs (access and default), a file capability, a sparse file, owners unknown to the
server (and a user name the server maps to another uid), setuid/setgid/sticky modes, a FIFO,
a symlink loop, names with newline, tab, backslash, a leading dash, invalid UTF-8 and 255
bytes, and deep folders. Trees are compared by a snapshot taken inside each host (bytes
names, inode groups, xattrs, allocation).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from fleet import Fleet, Host
from fleet.backup import backup_server, dupctl, ok, tenant

pytestmark = pytest.mark.root
ROOT = "/opt/fid"
SPARSE = 16 << 20
ODD = [b"new\nline", b"tab\there", b"back\\slash", b"-leading-dash", b"bad\xff\xfeutf8",
       b"n" * 255]  # fmt: skip
CAPABILITY = bytes.fromhex("0100000200040000000000000000000000000000")  # cap_net_bind_service+ep

# Inside a host: the tree at argv[1] as JSON, names base64 (relative), each with what must
# come back; hard links as groups of names sharing an inode.
SNAPSHOT = r"""
import base64, hashlib, json, os, stat, sys
root = os.fsencode(sys.argv[1])
out, inodes = {}, {}
for top, dirs, files in os.walk(root):
    for name in [*dirs, *files] + ([b"."] if top == root else []):
        path = top if name == b"." else os.path.join(top, name)
        info = os.lstat(path)
        rel = base64.b64encode(os.path.relpath(path, root)).decode()
        entry = {"mode": info.st_mode, "uid": info.st_uid, "gid": info.st_gid}
        try:
            keys = sorted(os.listxattr(path, follow_symlinks=False))
            values = [os.getxattr(path, k, follow_symlinks=False) for k in keys]
            entry["xattrs"] = {k: base64.b64encode(v).decode() for k, v in zip(keys, values)}
        except OSError:
            entry["xattrs"] = "unsupported"
        if stat.S_ISLNK(info.st_mode):
            entry["link"] = base64.b64encode(os.readlink(path)).decode()
        else:
            entry["mtime"] = int(info.st_mtime)
        if stat.S_ISREG(info.st_mode):
            entry["size"] = info.st_size
            entry["allocated"] = info.st_blocks * 512
            with open(path, "rb") as f:
                entry["sha256"] = hashlib.sha256(f.read()).hexdigest()
            inodes.setdefault(info.st_ino, []).append(rel)
        out[rel] = entry
groups = sorted(sorted(g) for g in inodes.values() if len(g) > 1)
print(json.dumps({"files": out, "links": groups}))
"""

# Inside the host: build the tree under argv[1].
BUILD = r"""
import os, struct, sys
root = os.fsencode(sys.argv[1])
odd, capability, sparse = eval(sys.argv[2]), bytes.fromhex(sys.argv[3]), int(sys.argv[4])
j = lambda *parts: os.path.join(root, *parts)
os.makedirs(j(b"odd"))
for name in odd:
    with open(j(b"odd", name), "wb") as f:
        f.write(b"content of " + name)
    os.setxattr(j(b"odd", name), b"user.origin", name)
with open(j(b"linked-a"), "wb") as f:
    f.write(b"one inode, three names\n")
os.makedirs(j(b"sub"))
os.link(j(b"linked-a"), j(b"linked-b"))
os.link(j(b"linked-a"), j(b"sub", b"linked-c"))
with open(j(b"note.txt"), "wb") as f:
    f.write(b"has attributes\n")
os.setxattr(j(b"note.txt"), b"user.comment", b"keep me")
os.setxattr(j(b"note.txt"), b"user.binary", bytes(range(256)))
def acl(*entries):
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
ANY = 0xFFFFFFFF
with open(j(b"acl.txt"), "wb") as f:
    f.write(b"user 4242 may read\n")
os.setxattr(j(b"acl.txt"), b"system.posix_acl_access",
            acl((1, 6, ANY), (2, 4, 4242), (4, 4, ANY), (0x10, 4, ANY), (0x20, 0, ANY)))
os.makedirs(j(b"shared"))
os.setxattr(j(b"shared"), b"system.posix_acl_default",
            acl((1, 7, ANY), (4, 5, ANY), (8, 5, 4343), (0x10, 5, ANY), (0x20, 0, ANY)))
with open(j(b"ping"), "wb") as f:
    f.write(b"\x7fELF pretend binary\n")
os.chmod(j(b"ping"), 0o755)
os.setxattr(j(b"ping"), b"security.capability", capability)
with open(j(b"disk.img"), "wb") as f:
    f.truncate(sparse)
    f.seek(sparse // 2)
    f.write(b"middle")
with open(j(b"stranger"), "wb") as f:
    f.write(b"owned by nobody the server knows\n")
os.chown(j(b"stranger"), 4242, 4343)
with open(j(b"alices"), "wb") as f:
    f.write(b"alice is 2001 here, 2002 on the server\n")
os.chown(j(b"alices"), 2001, 2001)
with open(j(b"suid"), "wb") as f:
    f.write(b"setuid\n")
os.chmod(j(b"suid"), 0o4755)
os.makedirs(j(b"sticky"))
os.chmod(j(b"sticky"), 0o1777)
os.makedirs(j(b"setgid"))
os.chmod(j(b"setgid"), 0o2775)
os.mkfifo(j(b"fifo"))
os.symlink(b"loop-b", j(b"loop-a"))
os.symlink(b"loop-a", j(b"loop-b"))
os.symlink(b"nowhere/at/all", j(b"dangling"))
deep = j(*[b"d"] * 60)
os.makedirs(deep)
with open(os.path.join(deep, b"bottom"), "wb") as f:
    f.write(b"deep down\n")
"""


def snapshot(host: Host, root: str) -> dict[str, Any]:
    return json.loads(host.run(["python3", "-c", SNAPSHOT, root]).stdout)


def name(raw: bytes) -> str:
    """A tree name as dupctl's argv takes it (bytes that are not UTF-8 as surrogates)."""
    return os.fsdecode(raw)


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with Fleet() as fleet:
        bs = backup_server(fleet)
        host = tenant(fleet, bs, "fid1", ROOT)
        host.run(["useradd", "-u", "2001", "-M", "alice"])
        bs.run(["useradd", "-u", "2002", "-M", "alice"])
        host.run(["python3", "-c", BUILD, ROOT, repr(ODD), CAPABILITY.hex(), str(SPARSE)])
        ok(dupctl(bs, "backup", "fid1"))
        yield fleet


@pytest.fixture(scope="module")
def bs(fleet: Fleet) -> Host:
    return fleet.hosts["bs"]


@pytest.fixture(scope="module")
def fid1(fleet: Fleet) -> Host:
    return fleet.hosts["fid1"]


@pytest.fixture(scope="module")
def original(fid1: Host) -> dict[str, Any]:
    tree = snapshot(fid1, ROOT)
    assert tree["links"], "the tree has hard links"
    disk = tree["files"][base64.b64encode(b"disk.img").decode()]
    assert disk["allocated"] < SPARSE // 4, "the sparse file is sparse on the host"
    return tree


def assert_identical(restored: dict[str, Any], original: dict[str, Any]) -> None:
    assert sorted(restored["files"]) == sorted(original["files"])
    for key, entry in original["files"].items():
        shown = base64.b64decode(key)
        got = restored["files"][key]
        allocated = got.pop("allocated", None)
        want = dict(entry)
        want.pop("allocated", None)
        assert got == want, shown
        if shown == b"disk.img":
            assert allocated is not None and allocated < SPARSE // 4, "holes punched back"
    assert restored["links"] == original["links"]


def test_everything_comes_back_into_a_folder_on_the_server(
    bs: Host, original: dict[str, Any]
) -> None:
    said = ok(dupctl(bs, "restore", "fid1", "--to", "/var/tmp/r1"))
    assert "re-applied from the set's metadata record" in said
    assert "warning" not in said
    assert_identical(snapshot(bs, f"/var/tmp/r1{ROOT}"), original)


def test_everything_comes_back_onto_the_host(
    bs: Host, fid1: Host, original: dict[str, Any]
) -> None:
    ok(dupctl(bs, "restore", "fid1", "--path", ROOT, "--to-host", "--to", "/var/tmp/r2"))
    assert_identical(snapshot(fid1, f"/var/tmp/r2{ROOT}"), original)


def test_one_path_keeps_its_attributes_and_links_within_it(
    bs: Host, original: dict[str, Any]
) -> None:
    ok(dupctl(bs, "restore", "fid1", "--path", f"{ROOT}/sub", "--to", "/var/tmp/r3"))
    sub = snapshot(bs, f"/var/tmp/r3{ROOT}/sub")
    assert len(sub["files"]) == 2  # the folder and its one link: nothing else restored
    ok(dupctl(bs, "restore", "fid1", "--path", f"{ROOT}/ping", "--to", "/var/tmp/r4"))
    ping = snapshot(bs, f"/var/tmp/r4{ROOT}")["files"][base64.b64encode(b"ping").decode()]
    assert ping["xattrs"]["security.capability"] == base64.b64encode(CAPABILITY).decode()
    assert ping["mode"] & 0o7777 == 0o755


def test_every_name_round_trips_through_list_json_and_restores_by_path(bs: Host) -> None:
    listed = json.loads(ok(dupctl(bs, "list", "fid1", "--json")))
    by_bytes = {base64.b64decode(entry["path_b64"]): entry for entry in listed}
    for raw in ODD:
        full = os.fsencode(ROOT) + b"/odd/" + raw
        assert full in by_bytes, raw
        entry = by_bytes[full]
        assert os.fsencode(entry["path"]) == full  # the text field is exact too
        target = f"/var/tmp/by-name-{ODD.index(raw)}"
        said = ok(dupctl(bs, "restore", "fid1", "--path", entry["path"], "--to", target))
        assert "\n" not in said.splitlines()[0]
        restored = os.fsencode(target) + full
        check = bs.run(["python3", "-c", "import os,sys; p=bytes.fromhex(sys.argv[1]); "
                        "print(open(p,'rb').read().hex(), os.getxattr(p,'user.origin').hex())",
                        restored.hex()]).stdout.split()  # fmt: skip
        assert check == [(b"content of " + raw).hex(), raw.hex()]
        assert not any(n.startswith(".dupstack-restore-")
                       for n in os.listdir(bs.path(target) / ROOT.lstrip("/") / "odd"))  # fmt: skip


def test_a_name_that_is_not_utf8_restores_in_place_on_the_host(bs: Host, fid1: Host) -> None:
    raw = os.fsencode(ROOT) + b"/odd/bad\xff\xfeutf8"
    content = fid1.run(["python3", "-c", "import sys; print(open(bytes.fromhex(sys.argv[1]),"
                        "'rb').read().hex())", raw.hex()]).stdout  # fmt: skip
    fid1.run(["python3", "-c", "import os,sys; os.unlink(bytes.fromhex(sys.argv[1]))", raw.hex()])
    ok(dupctl(bs, "restore", "fid1", "--path", name(raw), "--to-host"))
    again = fid1.run(["python3", "-c", "import sys; print(open(bytes.fromhex(sys.argv[1]),"
                      "'rb').read().hex())", raw.hex()]).stdout  # fmt: skip
    assert again == content


def test_what_the_target_cannot_hold_is_named_and_fails_the_restore(bs: Host) -> None:
    bs.run(["mkdir", "-p", "/var/tmp/ram"])
    bs.run(["mount", "-t", "ramfs", "ramfs", "/var/tmp/ram"])  # no xattrs, no holes
    try:
        done = dupctl(bs, "restore", "fid1", "--path", ROOT, "--to", "/var/tmp/ram/r")
    finally:
        listing = bs.run(["find", "/var/tmp/ram/r", "-name", "note.txt"]).stdout
        bs.run(["umount", "-l", "/var/tmp/ram"])
    assert done.returncode == 19, done.stderr
    assert listing.strip(), "the contents are restored"
    for named in (f"{ROOT}/note.txt: xattr user.comment", f"{ROOT}/acl.txt: xattr "
                  "system.posix_acl_access", f"{ROOT}/ping: xattr security.capability",
                  f"{ROOT}/disk.img: holes", f"{ROOT}/odd/new\\nline: xattr user.origin",
                  f"{ROOT}/odd/bad\\xff\\xfeutf8: xattr user.origin"):  # fmt: skip
        assert f"warning: not re-applied: {named}" in done.stdout, named
    assert "could not be re-applied on this server" in done.stderr


def test_the_record_is_in_the_set_and_gone_from_the_host(bs: Host, fid1: Host) -> None:
    record = "/var/backups/dupstack/metadata"
    listed = json.loads(ok(dupctl(bs, "list", "fid1", "--json")))
    assert any(entry["path"] == f"{record}/xattrs" for entry in listed)
    assert not fid1.path(record).exists(), "the record is removed from the host after the run"

"""The metadata record and exact names, without a fleet: the capture and apply scripts run
here as they run on a host, on real files (ext4 under /tmp, a ramfs for a target without
xattrs or holes), and duplicity's own listing of odd names parsed back exactly."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.duplicity.common import STABLE_OUTPUT_ENV
from agent.duplicity.list_files import parse_listing
from agent.metadata import Report, apply_command, shown

pytestmark = pytest.mark.root
CHECKOUT = Path(__file__).resolve().parents[2]
DUPLICITY = str(CHECKOUT / ".venv" / "bin" / "duplicity")
SCRIPTS = CHECKOUT / "agent" / "data"


def capture(paths: list[str], excludes: list[str], record: Path) -> str:
    request = json.dumps({"paths": paths, "excludes": excludes, "skip": [],
                          "record": str(record)})  # fmt: skip
    script = (SCRIPTS / "fsmeta_capture.py").read_text()
    return subprocess.run(["python3", "-c", script], input=request, capture_output=True,
                          text=True, check=True).stdout  # fmt: skip


def apply(record: Path, dest: Path, within: str) -> Report:
    argv, request = apply_command(str(record), str(dest), within)
    done = subprocess.run(argv, input=request, capture_output=True, text=True, check=True)
    return Report.parse(done.stdout)


def plain_copy(source: bytes, target: bytes) -> None:
    """As duplicity restores: each file written in full with its mode, owner and mtime (no
    hole, no link, no extended attribute)."""
    os.makedirs(target)
    for entry in os.scandir(source):
        copy = os.path.join(target, entry.name)
        if entry.is_dir(follow_symlinks=False):
            plain_copy(entry.path, copy)
        else:
            with open(entry.path, "rb") as file, open(copy, "wb") as out:
                out.write(file.read())
            info = entry.stat(follow_symlinks=False)
            os.chown(copy, info.st_uid, info.st_gid)
            os.chmod(copy, info.st_mode & 0o7777)
            os.utime(copy, ns=(info.st_atime_ns, info.st_mtime_ns))


@pytest.fixture
def ramfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "ram"
    mount.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "ramfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_record_re_applies_links_holes_and_attributes_and_names_what_cannot(
    tmp_path: Path, ramfs: Path
) -> None:
    source = tmp_path / "src"
    (source / "skip").mkdir(parents=True)
    odd = os.fsencode(source) + b"/odd\n\xff"
    Path(os.fsdecode(odd)).write_bytes(b"x")
    os.setxattr(odd, "user.k", b"v")
    (source / "skip" / "f").write_bytes(b"y")
    os.setxattr(source / "skip" / "f", "user.hidden", b"1")
    (source / "a").write_bytes(b"linked")
    os.link(source / "a", source / "b")
    with open(source / "sparse", "wb") as file:
        file.truncate(4 << 20)
        file.write(b"head")
    record = tmp_path / "record"
    capture([str(source)], [f"{source}/skip"], record)
    assert oct(record.stat().st_mode & 0o777) == "0o700"
    assert b"user.hidden" not in (record / "xattrs").read_bytes()  # excluded as duplicity does

    for dest in (tmp_path / "copy", ramfs):  # as duplicity restores: no links, xattrs, holes
        plain_copy(os.fsencode(source), os.fsencode(dest / source.relative_to("/")))
    assert apply(record, tmp_path / "copy", ".").applied == {
        "xattrs": 1,
        "hardlinks": 1,
        "sparse": 1,
    }
    plain_copy(os.fsencode(source), os.fsencode(tmp_path / "again" / source.relative_to("/")))
    report = apply(record, tmp_path / "again", str(source.relative_to("/")))
    copied = tmp_path / "again" / source.relative_to("/")
    assert report.found and not report.failed and not report.absent
    assert report.applied == {"xattrs": 1, "hardlinks": 1, "sparse": 1}
    assert (copied / "a").stat().st_ino == (copied / "b").stat().st_ino
    assert os.getxattr(os.fsencode(copied) + b"/odd\n\xff", "user.k") == b"v"
    assert (copied / "sparse").stat().st_blocks * 512 < 1 << 20

    failing = apply(record, ramfs, str(source.relative_to("/")))
    assert f"{shown(odd)}: xattr user.k: Operation not supported" in failing.failed
    assert any(line.startswith(f"{source}/sparse: holes:") for line in failing.failed)
    assert any(line.startswith("warning: not re-applied: ") for line in failing.lines())


def test_a_pattern_ending_in_a_slash_excludes_folders_only_as_duplicity_does(
    tmp_path: Path,
) -> None:
    source = tmp_path / "src"
    (source / "cache").mkdir(parents=True)
    (source / "cache" / "f").write_bytes(b"y")
    os.setxattr(source / "cache" / "f", "user.in_folder", b"1")
    (source / "log").write_bytes(b"z")  # a file: "log/" does not match it
    os.setxattr(source / "log", "user.a_file", b"1")
    record = tmp_path / "record"
    capture([str(source)], [f"{source}/cache/", f"{source}/log/"], record)
    dump = (record / "xattrs").read_bytes()
    assert b"user.in_folder" not in dump and b"user.a_file" in dump


def test_without_a_record_the_restore_says_what_did_not_come_back(tmp_path: Path) -> None:
    report = apply(tmp_path / "none", tmp_path, "")
    assert not report.found
    [line] = report.lines()
    assert "no metadata record" in line and "hard links" in line


def test_every_name_of_a_listing_comes_back_exactly(tmp_path: Path) -> None:
    """duplicity's log drops names that are not UTF-8, its stdout prints names with newlines
    over several lines: read together, each is exact (one even holds a fake listing line)."""
    source = tmp_path / "src"
    source.mkdir()
    names = [b"plain", b"new\nline", b"bad\xff\xfe", b"x\xff\nWed Dec  2 21:14:20 2026 fake",
             b"ok\n\xff", b"tab\there"]  # fmt: skip
    for name in names:
        with open(os.fsencode(source) + b"/" + name, "wb") as file:
            file.write(name)
    env = {**os.environ, **STABLE_OUTPUT_ENV, "PASSPHRASE": "test"}
    repository = f"file://{tmp_path}/repo"
    subprocess.run([DUPLICITY, "full", "--no-print-statistics", str(source), repository],
                   env=env, check=True, capture_output=True)  # fmt: skip
    log = tmp_path / "files.log"
    argv = [DUPLICITY, "list-current-files", "--log-file", str(log), repository]
    printed = subprocess.run(argv, env=env, check=True, capture_output=True).stdout
    entries = parse_listing(printed, log.read_text(errors="surrogateescape"))
    assert sorted(entry.path for entry in entries) == sorted([b"/", *(b"/" + n for n in names)])


def write_record(
    record: Path, xattrs: bytes = b"", links: list[bytes] = (), summary: str = ""
) -> None:  # type: ignore[assignment]
    record.mkdir(parents=True)
    (record / "summary.json").write_text(summary or '{"errors": []}')
    (record / "xattrs").write_bytes(xattrs)
    (record / "hardlinks").write_bytes(b"".join(name + b"\0" for name in links))
    (record / "sparse").write_bytes(b"")


def test_a_hostile_record_changes_nothing_outside_the_restored_tree(tmp_path: Path) -> None:
    """The record is the tenant's: absolute names, `..`, and links inside the restored tree
    pointing out are refused, each named; no file outside is changed, replaced or linked."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_bytes(b"the server's own")
    dest = tmp_path / "dest"
    (dest / "home").mkdir(parents=True)
    os.symlink(outside, dest / "home" / "lnk")  # restored from the tenant's set
    (dest / "home" / "payload").write_bytes(b"the tenant's")
    os.symlink(victim, dest / "home" / "direct")
    xattrs = b"".join(
        b"# file: " + name + b"\nuser.evil=0sZXZpbA==\n\n"
        for name in (os.fsencode(victim), b"home/../../outside/victim", b"home/lnk/victim",
                     b"home/direct")
    )  # fmt: skip
    write_record(tmp_path / "record", xattrs,
                 [b"home/payload", b"home/lnk/victim", b"home/lnk/victim", b"home/other",
                  b"home/payload", os.fsencode(victim)])  # fmt: skip
    (dest / "home" / "other").write_bytes(b"the tenant's")
    before = victim.stat()
    report = apply(tmp_path / "record", dest, "")
    after = victim.stat()
    assert victim.read_bytes() == b"the server's own" and os.listxattr(victim) == []
    assert (before.st_ino, before.st_nlink, before.st_mtime_ns) == (
        after.st_ino, after.st_nlink, after.st_mtime_ns
    )  # fmt: skip
    assert (dest / "home" / "other").stat().st_nlink == 1  # never linked to what is outside
    assert len(report.failed) == 7 and report.applied["hardlinks"] == 0  # 3 links, 4 xattrs
    assert any("unsafe name" in line for line in report.failed)
    assert any("home/lnk/victim: xattr user.evil: Not a directory" in line
               or "Too many levels" in line for line in report.failed)  # fmt: skip
    # a link's own attribute is set on the link (here refused: user.* on a symlink), never
    # on what it points to
    assert any(line.startswith("/home/direct: xattr user.evil") for line in report.failed)


def test_links_are_remade_only_between_equal_files_and_a_broken_record_is_one_failure(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a").write_bytes(b"one")
    (dest / "b").write_bytes(b"two")  # replaced between the record and the backup
    (dest / "c").write_bytes(b"one")
    os.utime(dest / "c", ns=(0, (dest / "a").stat().st_mtime_ns))
    write_record(tmp_path / "r1", b"# file: a\nuser.x=0s!!notbase64\n\n",
                 [b"a", b"b", b"a", b"c", b"a", b"gone/d"])  # fmt: skip
    report = apply(tmp_path / "r1", dest, "")
    assert (dest / "b").read_bytes() == b"two" and (dest / "b").stat().st_nlink == 1
    assert (dest / "a").stat().st_ino == (dest / "c").stat().st_ino
    assert report.apart == ["/b and /a: the set holds them as different files"]
    assert report.failed == ["/a: xattr user.x: Incorrect padding"] or (
        len(report.failed) == 1 and report.failed[0].startswith("/a: xattr user.x:")
    )
    assert "/gone/d" in report.absent and not list(dest.glob(".dupstack-link-*"))
    spanning = apply(tmp_path / "r1", dest, "a")
    assert "/a and /b: outside the restored path" in spanning.apart
    write_record(tmp_path / "r2", summary="{not json")
    broken = apply(tmp_path / "r2", dest, "")
    assert len(broken.failed) == 1 and broken.failed[0].startswith("/.: the record: ")

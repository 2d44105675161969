"""`dupctl list|restore|verify|prune` against real backups of real tenant hosts.

One fleet for the module: the backup server `bs` (after `dupctl init`) and two tenants added
with `dupctl host add`. web1 gets a full backup of /opt/app, then one file changes and an
incremental follows; web2 is kept for prune. Tests run in file order; the story is:
list, restore here (an old version, then everything), restore onto the host, verify, and a
damaged volume file last.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fleet import Fleet, Host
from fleet.backup import (
    AWKWARD,
    BACKUPS,
    backup_server,
    dupctl,
    ok,
    set_host_options,
    tenant,
    tree,
    write_tree,
)

pytestmark = pytest.mark.root
APP = "/opt/app"


@dataclass(frozen=True)
class Backups:
    """web1's two backups: the tree at the full, the time after it, the tree at the incremental."""

    full: dict
    full_time: str  # e.g. 2026-11-22T03:00:00Z: after the full, before the incremental
    latest: dict


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with Fleet() as fleet:
        bs = backup_server(fleet)
        tenant(fleet, bs, "web1", APP)
        tenant(fleet, bs, "web2", APP)
        yield fleet


@pytest.fixture(scope="module")
def bs(fleet: Fleet) -> Host:
    return fleet.hosts["bs"]


@pytest.fixture(scope="module")
def web1(fleet: Fleet) -> Host:
    return fleet.hosts["web1"]


@pytest.fixture(scope="module")
def backups(bs: Host, web1: Host) -> Backups:
    app = web1.path(APP)
    write_tree(app)
    full = tree(app)
    ok(dupctl(bs, "backup", "web1"))
    full_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    time.sleep(1.1)  # duplicity's set times have whole seconds
    (app / "config.txt").write_bytes(b"version 2\n")
    (app / "config.txt").chmod(0o600)
    ok(dupctl(bs, "backup", "web1"))
    return Backups(full, full_time, tree(app))


def test_list_shows_the_files_of_a_backup_at_a_time(bs: Host, backups: Backups) -> None:
    old = ok(dupctl(bs, "list", "web1", "--time", backups.full_time)).splitlines()
    for name in ("config.txt", AWKWARD, "empty"):
        mtime = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(backups.full[name][2]))
        assert f"{mtime}  {APP}/{name}" in old  # as it was at the full
    latest = json.loads(ok(dupctl(bs, "list", "web1", "--json")))
    paths = [entry["path"] for entry in latest]
    assert paths[:3] == ["/", "/opt", APP]
    assert {f"{APP}/{name}" for name in backups.latest if name != "."} <= set(paths)
    config = next(entry for entry in latest if entry["path"] == f"{APP}/config.txt")
    assert config["mtime"] > "2025"  # changed since


def test_restore_one_path_as_of_an_earlier_backup(bs: Host, backups: Backups) -> None:
    done = dupctl(bs, "restore", "web1", "--path", f"{APP}/config.txt", "--time",
                  backups.full_time, "--to", "/tmp/old")  # fmt: skip
    assert ok(done) == (
        f"restored {APP}/config.txt of web1 (as of {backups.full_time}) "
        f"to /tmp/old{APP}/config.txt on this server (/tmp/old is root's alone: 0700)\n"
    )
    assert bs.path("/tmp/old").stat().st_mode & 0o777 == 0o700  # set-id files, others' uids
    restored = bs.path(f"/tmp/old{APP}/config.txt")
    assert restored.read_bytes() == b"version 1\n"
    assert tree(restored) == {".": backups.full["config.txt"]}


@pytest.mark.parametrize("damage", ["emptied", "cut short"])
@pytest.mark.parametrize("side", ["here", "on the host"])
def test_a_damaged_cached_manifest_is_not_taken_for_a_missing_path(
    bs: Host, web1: Host, backups: Backups, side: str, damage: str
) -> None:
    """duplicity finds volumes by its cache's manifests: emptied, it "restores" nothing
    (exit 0), cut short, it fails with a traceback. Either once looked like a path the
    backup lacks; the restore fetches them from the sets again instead."""
    where = bs if side == "here" else web1  # the host's cache is its backups' own
    cache = where.path("/var/cache/dupstack/dupstack-web1")
    manifests = sorted(cache.glob("*.manifest"))
    assert len(manifests) == 2  # the full's and the incremental's
    for manifest in manifests:
        manifest.write_bytes(b"" if damage == "emptied" else manifest.read_bytes()[:60])
    into = f"/root/damaged-{side.replace(' ', '-')}-{damage.replace(' ', '-')}"
    argv = ["restore", "web1", "--path", f"{APP}/config.txt", "--to", into]
    done = ok(dupctl(bs, *argv, *(["--to-host"] if side == "on the host" else [])))
    assert done.startswith(f"restored {APP}/config.txt of web1 (latest) to {into}{APP}/")
    assert where.path(f"{into}{APP}/config.txt").read_bytes() == b"version 2\n"
    assert all(m.stat().st_size > 60 for m in manifests)  # fetched again, whole
    missing = dupctl(bs, "restore", "web1", "--path", f"{APP}/missing", "--to", f"{into}-m")
    assert missing.returncode == 1
    assert "that path is not in web1's backup at that time" in missing.stderr


def test_another_sets_manifest_in_the_hosts_cache_does_not_hang_a_check_there(
    bs: Host, web1: Host, backups: Backups
) -> None:
    """The host's cached manifest of the latest set is another set's (whole, valid): duplicity
    3.2.1's verify then hangs for good (gpg blocked writing to a pipe duplicity waits on).
    Reads of the sets there (verify, the restores of a path, a record, a dump) drop the
    cached manifests first, and duplicity fetches them from the sets."""
    cache = web1.path("/var/cache/dupstack/dupstack-web1")
    [full] = cache.glob("duplicity-full.*.manifest")
    [latest] = cache.glob("duplicity-inc.*.manifest")
    latest.write_bytes(full.read_bytes())
    done = bs.run(["timeout", "120", "dupctl", "verify", "web1"], input="", check=False)
    assert done.returncode == 0, done.stderr
    assert " 0 difference(s) found" in done.stdout.splitlines()[-1]
    assert latest.read_bytes() != full.read_bytes()  # fetched again from the set


def test_restore_everything_byte_for_byte(bs: Host, backups: Backups) -> None:
    ok(dupctl(bs, "restore", "web1", "--to", "/tmp/all"))
    assert tree(bs.path(f"/tmp/all{APP}")) == backups.latest


def test_restore_refuses_what_it_cannot_do(bs: Host, backups: Backups) -> None:
    bs.run(["sh", "-c", "mkdir /tmp/full && touch /tmp/full/x"])
    cases = {
        ("list", "nope"): (2, "no host 'nope' in /etc/duplicity/dupstack.yaml"),
        ("restore", "web1", "--path", f"{APP}/missing", "--to", "/tmp/m"): (
            1, "that path is not in web1's backup at that time"),
        ("restore", "web1", "--to", "/tmp/full"): (
            2, "/tmp/full exists and is not empty on this server: restore never overwrites"),
        ("restore", "web1", "--path", "opt/app", "--to", "/tmp/r"): (
            2, "--path must be absolute, as on the host: 'opt/app'"),
        ("list", "web1", "--time", "last tuesday"): (2, 'Bad time string'),
        ("restore", "web1"): (2, "say where to restore: --to DIR"),
        ("restore", "web1", "--to-host"): (2, "restoring everything in place is refused"),
    }  # fmt: skip
    for argv, (code, message) in cases.items():
        done = dupctl(bs, *argv)
        assert (done.returncode, done.stdout) == (code, ""), (argv, done.stderr)
        assert message in done.stderr, (argv, done.stderr)


def test_a_wrong_stack_secret_is_named(bs: Host, backups: Backups) -> None:
    secret = bs.path("/etc/duplicity/passphrase")
    kept = secret.read_bytes()
    secret.write_bytes(b"not the secret\n")
    try:
        done = dupctl(bs, "restore", "web1", "--to", "/tmp/wrong")
    finally:
        secret.write_bytes(kept)
    assert done.returncode == 6, done.stderr
    assert "dupctl: error: the passphrase does not decrypt web1's backups" in done.stderr
    assert "`dupctl init` restores it from this volume's escrow" in done.stderr


def test_restore_onto_the_host_brings_back_a_deleted_file(
    bs: Host, web1: Host, backups: Backups
) -> None:
    lost = web1.path(f"{APP}/{AWKWARD}")
    lost.unlink()
    done = ok(dupctl(bs, "restore", "web1", "--path", f"{APP}/{AWKWARD}", "--to-host"))
    assert done.startswith(f"restored {APP}/{AWKWARD} of web1 (latest) to ")
    assert tree(lost) == {".": backups.latest[AWKWARD]}
    # It is there now: restoring again is refused, and the hint says how to restore beside it.
    again = dupctl(bs, "restore", "web1", "--path", f"{APP}/{AWKWARD}", "--to-host")
    assert again.returncode == 2
    assert f"{APP}/{AWKWARD} exists on web1: restore never overwrites" in again.stderr
    assert "--to-host --to DIR" in again.stderr
    ok(dupctl(bs, "restore", "web1", "--path", f"{APP}/sub dir", "--to-host", "--to", "/root/r"))
    assert tree(web1.path(f"/root/r{APP}/sub dir")) == {
        name.removeprefix("sub dir/") if name != "sub dir" else ".": record
        for name, record in backups.latest.items()
        if name.startswith("sub dir")
    }


def test_verify_compares_the_backup_with_the_hosts_files(
    bs: Host, web1: Host, backups: Backups
) -> None:
    mtime = backups.latest["."][2]  # as backed up (the restore onto web1 changed it)
    # Every file of the backup is compared: those in /opt/app, and / and /opt.
    os.utime(web1.path(APP), (mtime, mtime))
    # the spool (the metadata record), removed from the host after the run, is left out
    assert (
        ok(dupctl(bs, "verify", "web1", "--compare-data"))
        .splitlines()[-1]
        .startswith(
            f"Verify complete: {len(backups.latest) + 2} file(s) compared, 0 difference(s) found "
        )
    )
    (web1.path(f"{APP}/config.txt")).write_bytes(b"version 3\n")
    done = dupctl(bs, "verify", "web1", "--compare-data")
    assert done.returncode == 1
    assert "  File opt/app/config.txt has mtime " in done.stdout
    assert "web1: 1 difference(s) between its backup and its files" in done.stderr
    # Without --compare-data, only the archives are checked.
    assert " 0 difference(s) found" in ok(dupctl(bs, "verify", "web1")).splitlines()[-1]


def test_verify_catches_a_damaged_volume_file(bs: Host, backups: Backups) -> None:
    volume = next(bs.path(BACKUPS.format("web1")).glob("duplicity-full.*.vol1.difftar.gpg"))
    kept = volume.read_bytes()
    damaged = bytearray(kept)
    damaged[len(kept) // 2 : len(kept) // 2 + 8] = bytes(8)
    volume.write_bytes(damaged)
    try:
        done = dupctl(bs, "verify", "web1")
    finally:
        volume.write_bytes(kept)
    assert done.returncode == 1
    assert (
        f"dupctl: error: web1's backup is damaged: {volume.name} does not match its manifest"
        in done.stderr
    )


def full_backups(bs: Host, name: str) -> list[str]:
    folder = bs.path(BACKUPS.format(name))
    return sorted(f.name.split(".")[1] for f in folder.glob("duplicity-full.*.manifest.gpg"))


def test_prune_keeps_the_newest_full_chains(fleet: Fleet, bs: Host) -> None:
    write_tree(fleet.hosts["web2"].path(APP))
    set_host_options(bs, "web2", keep_full=2)
    done = dupctl(bs, "list", "web2")
    assert done.returncode == 1
    assert "web2 has no backup yet" in done.stderr
    assert ok(dupctl(bs, "prune", "web2")) == "prune web2: no backups yet\n"
    for args in ((), (), ("--full",), ("--full",)):  # a chain of 2 sets, then 2 fulls
        ok(dupctl(bs, "backup", "web2", *args))
    first, second, third = full_backups(bs, "web2")
    pruned = ok(dupctl(bs, "prune", "web2"))
    assert pruned.startswith(f"prune web2: removed 6 file(s) of 2 set(s): full {first}, ")
    assert pruned.endswith("; 2 full backup(s) kept\n")
    assert full_backups(bs, "web2") == [second, third]
    # Another run holds web2's lock: prune waits for no one and deletes nothing.
    lock = "/var/lib/dupstack/locks/web2.lock"
    busy = bs.run(["flock", lock, "dupctl", "prune", "web2"], input="", check=False)
    assert busy.returncode == 12, busy.stderr
    # remove_older_than drops the older chain; the active one always stays.
    set_host_options(bs, "web2", remove_older_than="1s")
    time.sleep(1)
    assert ok(dupctl(bs, "prune")) == (
        "prune web1: removed 0 file(s); 1 full backup(s) kept\n"
        f"prune web2: removed 3 file(s) of 1 set(s): full {second}; 1 full backup(s) kept\n"
    )
    assert full_backups(bs, "web2") == [third]
    # A file the host's account still owns is an unfinished run's, maybe still being
    # written on the host: prune leaves the host alone (the next backup checks it first).
    unfinished = f"{BACKUPS.format('web2')}/duplicity-full.20991231T000000Z.vol1.difftar.gpg"
    bs.path(unfinished).write_bytes(b"partial")
    bs.run(["chown", "dup-web2", unfinished])
    before = sorted(bs.path(BACKUPS.format("web2")).iterdir())
    assert ok(dupctl(bs, "prune", "web2")) == (
        "prune web2: skipped: 1 file(s) of an unfinished run; "
        "`dupctl backup web2` deals with them first\n"
    )
    assert sorted(bs.path(BACKUPS.format("web2")).iterdir()) == before
    assert bs.path(unfinished).read_bytes() == b"partial"

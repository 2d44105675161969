"""`dupctl backup` when things go wrong: each fault is one clear line naming the host and what
to do, the other hosts go on, and nothing already backed up is lost.

One fleet for the module: the backup server `bs` (after `dupctl init`); each test adds the
tenants it breaks, so each reads as a stand-alone story.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from fleet import Fleet, Host, _pids_in_netns
from fleet.backup import BACKUPS, backup_server, set_host_options
from tests.agent.backup_fleet import (
    DATA,
    dupctl,
    restore,
    snapshot,
    status,
    tenant,
    write_files,
)

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with Fleet() as fleet:
        backup_server(fleet)
        yield fleet


@pytest.fixture(scope="module")
def bs(fleet: Fleet) -> Host:
    return fleet.hosts["bs"]


def backup(bs: Host, *args: str) -> subprocess.CompletedProcess[str]:
    return dupctl(bs, "backup", "--retry-delay", "1", "--timeout", "2", *args)


def backed_up(bs: Host, *names: str) -> None:
    done = backup(bs, *names)
    assert done.returncode == 0, done.stderr


def set_times(bs: Host, name: str) -> list[str]:
    """The time of each set, from its manifest's name (duplicity-full.T.manifest.gpg, ...)."""
    names = os.listdir(bs.path(BACKUPS.format(name)))
    return sorted(re.findall(r"(\d{8}T\d{6}Z)\.manifest", " ".join(names)))


def uploading(fleet: Fleet, bs: Host, name: str) -> tuple[Host, subprocess.Popen[str]]:
    """Host `name` backed up once, then 6 MB more of it in 1 MiB volumes: its run (output
    piped), once the first of those volumes is under way."""
    host = tenant(fleet, name)
    backed_up(bs, name)
    host.run(["sh", "-c", "head -c 6000000 /dev/urandom > /home/app/random.bin"])
    set_host_options(bs, name, volsize=1)
    run = subprocess.Popen(bs.keeper.nsenter(["dupctl", "backup", name]), text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    backups = bs.path(BACKUPS.format(name))
    deadline = time.monotonic() + 30
    while sum(f.stat().st_uid != 0 for f in backups.iterdir()) < 1:  # a volume under way
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.02)
    return host, run


def test_a_host_that_is_down_fails_alone(fleet: Fleet, bs: Host) -> None:
    tenant(fleet, "up")
    down = tenant(fleet, "down")
    down.stop()
    done = backup(bs, "up", "down")
    assert done.returncode == 8
    assert re.search(r"up +ok +full", done.stdout)
    assert re.search(r"down +failed +- .*unreachable", done.stdout)
    assert "dupctl: error: host down (10.77.0." in done.stderr
    assert "dupctl: hint: check that down is running" in done.stderr
    assert status(bs, "down")["last_run"]["result"] == "failed"
    assert status(bs, "up")["last_run"]["result"] == "ok"


def test_a_changed_host_key_is_refused_before_any_backup(fleet: Fleet, bs: Host) -> None:
    rekeyed = tenant(fleet, "rekeyed")
    backed_up(bs, "rekeyed")
    before = os.listdir(bs.path(BACKUPS.format("rekeyed")))
    rekeyed.start_sshd()  # a new host key: a rebuilt host, or someone in between
    done = backup(bs, "rekeyed")
    assert done.returncode == 9
    assert "rekeyed (10.77.0." in done.stderr and "is pinned: refusing to connect" in done.stderr
    assert "--host-key FILE" in done.stderr
    assert os.listdir(bs.path(BACKUPS.format("rekeyed"))) == before


def test_a_full_volume_fails_clearly_and_the_next_run_succeeds(fleet: Fleet, bs: Host) -> None:
    big = tenant(fleet, "big")
    backed_up(bs, "big")
    first = snapshot(big)
    big.run(["sh", "-c", "head -c 3000000 /dev/urandom > /home/app/random.bin"])
    free = os.statvfs(bs.path("/mnt/vdb"))
    filler = bs.path("/mnt/vdb/filler")
    bs.run(["fallocate", "-l", str(free.f_bavail * free.f_frsize - 1_000_000), str(filler)])
    inventory = bs.path("/etc/duplicity/dupstack.yaml")
    kept = inventory.read_text()
    try:
        # The reserve (a tenth of this small volume) refuses the run before it writes.
        refused = backup(bs, "big")
        assert refused.returncode == 14, refused.stderr
        assert re.search(r"the backup volume has [\d.]+ [KM]iB free, less than the reserve",
                         refused.stderr)  # fmt: skip
        # Without a reserve the volume fills while duplicity writes: a clear error too.
        document = yaml.safe_load(kept)
        document["server"]["reserve"] = "0"
        inventory.write_text(yaml.safe_dump(document))
        full = backup(bs, "big")
    finally:
        filler.unlink()
        inventory.write_text(kept)
    assert full.returncode == 7
    assert re.search(r"big: the backup volume /mnt/vdb is full \(\d+ bytes free\)", full.stderr)
    assert "free space (dupctl prune) or grow the volume" in full.stderr
    assert status(bs, "big")["last_run"]["result"] == "failed"
    again = backup(bs, "big")
    assert again.returncode == 0, again.stderr
    assert "big: cleaning up" in again.stdout
    assert restore(bs, "big", "/root/big-1", time=set_times(bs, "big")[0]) == first
    assert restore(bs, "big", "/root/big-2") == snapshot(big)


def test_a_volume_that_fills_during_the_signatures_upload_heals(fleet: Fleet, bs: Host) -> None:
    """No reserve, and room for the volume but not the signatures: the run fails on a full
    volume with the signatures half-written (the issue's permanent failure), and once room
    is made the next run cleans up, backs up and every set restores. The room is measured
    from the same full made once before (same data, same sizes) and then removed."""
    tight = tenant(fleet, "tight")
    tight.run(["sh", "-c", "head -c 4000000 /dev/urandom > /home/app/random.bin"])
    for index in range(2000):  # many files: signatures of some size
        tight.path(f"/home/app/small{index}.bin").write_bytes(os.urandom(3000))
    backed_up(bs, "tight")
    folder = bs.path(BACKUPS.format("tight"))
    blocks = {f.name: f.stat().st_blocks * 512 for f in folder.iterdir()}
    volume = sum(size for name, size in blocks.items() if ".vol" in name)
    signatures = sum(size for name, size in blocks.items() if "signatures" in name)
    assert signatures > 128 << 10, blocks  # a margin the file system's rounding cannot eat
    for file in folder.iterdir():  # as if it never ran: the next is the same full again
        file.unlink()
    tight.run(["rm", "-rf", "/var/cache/dupstack/dupstack-tight"])
    inventory = bs.path("/etc/duplicity/dupstack.yaml")
    kept = inventory.read_text()
    document = yaml.safe_load(kept)
    document["server"]["reserve"] = "0"
    inventory.write_text(yaml.safe_dump(document))
    filler = bs.path("/mnt/vdb/filler")
    free = os.statvfs(bs.path("/mnt/vdb"))
    room = volume + signatures // 2  # the volume fits, the signatures do not
    bs.run(["fallocate", "-l", str(free.f_bavail * free.f_frsize - room), str(filler)])
    try:
        full = backup(bs, "tight")
        names = sorted(os.listdir(folder))
    finally:
        filler.unlink()
        inventory.write_text(kept)
    assert full.returncode == 7, full.stderr
    assert "tight: the backup volume /mnt/vdb is full" in full.stderr
    assert any(".vol1." in name for name in names), names  # it failed after the volume
    assert not any(name.endswith(".manifest.gpg") for name in names), names
    again = backup(bs, "tight")
    assert again.returncode == 0, again.stderr
    assert status(bs, "tight")["incomplete_sets"] == 0
    assert restore(bs, "tight", "/root/tight") == snapshot(tight)


def test_a_read_only_volume_is_named_at_once_and_nothing_is_tried(fleet: Fleet, bs: Host) -> None:
    ro = tenant(fleet, "ro")
    backed_up(bs, "ro")
    bs.run(["mount", "-o", "remount,ro", "/mnt/vdb"])  # as ext4 does after an I/O error
    try:
        done = backup(bs, "ro")
        pruned = dupctl(bs, "prune", "ro")
    finally:
        bs.run(["mount", "-o", "remount,rw", "/mnt/vdb"])
    assert done.returncode == 7, done.stderr
    assert "the backup volume /mnt/vdb is read-only" in done.stderr and "fsck" in done.stderr
    assert "connecting to" not in done.stdout  # refused before any step, never retried
    assert pruned.returncode == 7 and "read-only" in pruned.stderr, pruned.stderr
    assert "internal error" not in done.stderr + pruned.stderr
    assert status(bs, "ro")["last_run"]["result"] == "failed"
    backed_up(bs, "ro")
    assert restore(bs, "ro", "/root/ro") == snapshot(ro)


def test_a_lost_cache_on_the_host_does_not_stop_incrementals(fleet: Fleet, bs: Host) -> None:
    forgetful = tenant(fleet, "forgetful")
    backed_up(bs, "forgetful")
    forgetful.run(["rm", "-rf", "/var/cache/dupstack"])
    write_files(forgetful, 2, "after the cache was lost")
    done = backup(bs, "forgetful")
    assert done.returncode == 0, done.stderr
    assert re.search(r"forgetful +ok +incremental", done.stdout)
    assert (status(bs, "forgetful")["chains"], status(bs, "forgetful")["sets"]) == (1, 2)
    assert restore(bs, "forgetful", "/root/forgetful") == snapshot(forgetful)


def test_a_volume_gone_read_only_mid_run_is_named_and_the_next_run_cleans_up(
    fleet: Fleet, bs: Host
) -> None:
    """A read-only bind mount over the host's folder, made while it uploads: new files there
    fail with EROFS as after ext4's remount-ro, and statvfs says read-only."""
    midway, run = uploading(fleet, bs, "midway")
    folder = BACKUPS.format("midway")
    bs.run(["mount", "--bind", folder, folder])
    try:
        bs.run(["mount", "-o", "remount,bind,ro", folder])
        out, err = run.communicate(timeout=120)
    finally:
        bs.run(["umount", folder])
    assert run.returncode == 7, out + err
    assert "the backup volume /mnt/vdb is read-only" in err and "internal error" not in err
    inventory = bs.path("/etc/duplicity/dupstack.yaml")
    document = yaml.safe_load(inventory.read_text())
    del document["hosts"]["midway"]["volsize"]  # as before (a later test edits every host)
    inventory.write_text(yaml.safe_dump(document))
    done = backup(bs, "midway")
    assert done.returncode == 0, done.stderr
    assert "midway: cleaning up" in done.stdout
    assert restore(bs, "midway", "/root/midway") == snapshot(midway)


def test_a_sigterm_stops_the_run_cleanly_and_records_it(fleet: Fleet, bs: Host) -> None:
    """As systemd stops a server: the host's duplicity is ended, what the run wrote removed,
    its folder closed, the run recorded as stopped (exit 20)."""
    term, run = uploading(fleet, bs, "term")
    backups = bs.path(BACKUPS.format("term"))
    run.send_signal(signal.SIGTERM)  # dupctl itself (nsenter execs it)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 20, out + err
    assert "dupctl was stopped (SIGTERM): term's run was stopped" in err
    assert "what this run wrote was removed" in err
    record = status(bs, "term")["last_run"]
    assert record["result"] == "failed" and record["error"].startswith("dupctl was stopped")
    assert all(f.stat().st_uid == 0 for f in backups.iterdir())  # nothing half-written left
    assert backups.stat().st_mode & 0o7777 == 0o1750

    def duplicity_on_term() -> bool:
        for pid in _pids_in_netns(term.keeper.net):
            try:
                if b"duplicity" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return True
            except OSError:  # ended meanwhile
                continue
        return False

    deadline = time.monotonic() + 10
    while duplicity_on_term():
        assert time.monotonic() < deadline, "the host's duplicity still runs"
        time.sleep(0.1)
    inventory = bs.path("/etc/duplicity/dupstack.yaml")
    document = yaml.safe_load(inventory.read_text())
    del document["hosts"]["term"]["volsize"]  # as before (a later test edits every host)
    inventory.write_text(yaml.safe_dump(document))
    backed_up(bs, "term")
    assert restore(bs, "term", "/root/term") == snapshot(term)


def test_a_damaged_cache_on_the_host_is_rebuilt_from_the_sets(fleet: Fleet, bs: Host) -> None:
    damaged = tenant(fleet, "damaged")
    backed_up(bs, "damaged")
    for file in damaged.path("/var/cache/dupstack/dupstack-damaged").iterdir():
        file.write_bytes(os.urandom(100))  # every cached manifest and signature file garbled
    write_files(damaged, 2, "after the cache was damaged")
    done = backup(bs, "damaged")
    assert done.returncode == 0, done.stderr
    assert "damaged: its duplicity cache disagrees with its sets: rebuilt from them" in done.stdout
    assert (status(bs, "damaged")["chains"], status(bs, "damaged")["sets"]) == (1, 2)
    restored = dupctl(bs, "restore", "damaged", "--path", DATA, "--to", "/root/damaged-1")
    assert restored.returncode == 0, restored.stderr
    assert snapshot(bs, f"/root/damaged-1{DATA}") == snapshot(damaged)


def test_a_replaced_stack_secret_is_a_clear_error(fleet: Fleet, bs: Host) -> None:
    tenant(fleet, "secretive")
    backed_up(bs, "secretive")
    secret = bs.path("/etc/duplicity/passphrase")
    original = secret.read_bytes()
    secret.write_bytes(b"not the secret the sets were made with\n")
    try:
        done = backup(bs, "secretive")
    finally:
        secret.write_bytes(original)
    assert done.returncode == 6, done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("dupctl: error:")]
    assert len(error) == 1 and "secretive" in error[0], done.stderr
    assert "/etc/duplicity/passphrase" in done.stderr
    assert len(set_times(bs, "secretive")) == 1
    backed_up(bs, "secretive")


def test_a_killed_run_is_cleaned_up_by_the_next(fleet: Fleet, bs: Host) -> None:
    victim = tenant(fleet, "victim")
    backed_up(bs, "victim")
    first = snapshot(victim)
    victim.run(["sh", "-c", "head -c 6000000 /dev/urandom > /home/app/random.bin"])
    bs.run(
        [
            "sed",
            "-i",
            "s/^    address: 10.77.0.*$/&\\n    volsize: 1/",
            "/etc/duplicity/dupstack.yaml",
        ]
    )
    run = subprocess.Popen(bs.keeper.nsenter(["dupctl", "backup", "victim"]))
    backups = bs.path(BACKUPS.format("victim"))
    deadline = time.monotonic() + 30
    while sum(f.stat().st_uid != 0 for f in backups.iterdir()) < 2:  # two volumes uploaded
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.02)
    killed = []
    for cmdline in os.listdir("/proc"):
        try:
            argv = open(f"/proc/{cmdline}/cmdline", "rb").read()
        except OSError:
            continue
        if b"dupctl\0backup\0victim" in argv or b"dupstack-victim" in argv:
            os.kill(int(cmdline), signal.SIGKILL)
            killed.append(argv)
    run.wait()
    assert len(killed) >= 2  # dupctl and duplicity on the host
    assert bs.path("/var/lib/dupstack/locks/victim.lock").read_text().strip() == str(run.pid)
    again = backup(bs, "victim")
    assert again.returncode == 0, again.stderr
    assert f"victim: stale lock of pid {run.pid} (no longer running) cleared" in again.stdout
    assert "victim: cleaning up" in again.stdout
    assert all(
        f.stat().st_uid == 0 and f.stat().st_mode & 0o777 == 0o440 for f in backups.iterdir()
    )
    assert (status(bs, "victim")["sets"], status(bs, "victim")["incomplete_sets"]) == (2, 0)
    assert restore(bs, "victim", "/root/victim-1", time=set_times(bs, "victim")[0]) == first
    assert restore(bs, "victim", "/root/victim-2") == snapshot(victim)


def _settle(files: Callable[[], dict[str, tuple[int, int]]]) -> dict[str, tuple[int, int]]:
    time.sleep(0.5)
    return files()


def test_a_run_still_going_on_the_host_is_never_cleaned_up_under_it(fleet: Fleet, bs: Host) -> None:
    """Only dupctl dies (kill -9, or a cut connection): the host's duplicity goes on writing.
    The next runs refuse (exit 12, naming its pid) and delete nothing, also while the host
    is unreachable; once it has ended, a run cleans up and every set restores."""
    orphan = tenant(fleet, "orphan")
    backed_up(bs, "orphan")
    first = snapshot(orphan)
    orphan.run(["sh", "-c", "head -c 6000000 /dev/urandom > /home/app/random.bin"])
    set_host_options(bs, "orphan", volsize=1)
    run = subprocess.Popen(bs.keeper.nsenter(["dupctl", "backup", "orphan"]))
    backups = bs.path(BACKUPS.format("orphan"))
    deadline = time.monotonic() + 30
    while sum(f.stat().st_uid != 0 for f in backups.iterdir()) < 2:  # two volumes uploaded
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.02)
    [duplicity] = [  # the host's duplicity (hosts share this machine's pids)
        pid
        for pid in _pids_in_netns(orphan.keeper.net)
        # duplicity itself, not its gpg (whose temp paths hold "duplicity" too)
        if any(
            arg == b"duplicity" or arg.endswith(b"/duplicity")
            for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        )
    ]
    os.kill(duplicity, signal.SIGSTOP)  # holds it mid-set while the next runs try
    run.kill()  # dupctl only
    run.wait()

    def files() -> dict[str, tuple[int, int]]:
        return {f.name: (f.stat().st_uid, f.stat().st_size) for f in backups.iterdir()}

    unfinished = files()
    deadline = time.monotonic() + 10
    while (settled := _settle(files)) != unfinished:  # data already sent still lands on disk
        unfinished = settled
        assert time.monotonic() < deadline
    busy = backup(bs, "orphan")
    assert busy.returncode == 12, busy.stdout + busy.stderr
    assert f"orphan: duplicity (pid {duplicity}) still works on its sets there" in busy.stderr
    assert re.search(r"orphan +failed +- ", busy.stdout)
    assert f"kill {duplicity}" in busy.stderr
    assert files() == unfinished
    assert status(bs, "orphan")["last_run"]["result"] == "failed"
    orphan.down()
    try:
        assert backup(bs, "orphan").returncode == 8  # unreachable: it may still run
    finally:
        orphan.up()
    assert files() == unfinished
    os.kill(duplicity, signal.SIGCONT)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{duplicity}").exists():  # it ends by itself
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert all(name in files() for name in unfinished)  # nothing it wrote was lost
    backed_up(bs, "orphan")
    assert all(f.stat().st_uid == 0 for f in backups.iterdir())
    assert status(bs, "orphan")["incomplete_sets"] == 0
    times = set_times(bs, "orphan")
    assert restore(bs, "orphan", "/root/orphan-1", time=times[0]) == first
    for index, moment in enumerate(times[1:], 2):
        assert restore(bs, "orphan", f"/root/orphan-{index}", time=moment) == snapshot(orphan)


def test_a_sealed_file_damaged_on_the_volume_is_named_not_blamed_on_an_unfinished_run(
    fleet: Fleet, bs: Host
) -> None:
    """A set's manifest emptied on the volume (what ext4 left of an unsynced set after an
    abort): the run names the file and says it is no unfinished run's."""
    rotten = tenant(fleet, "rotten")
    backed_up(bs, "rotten")
    write_files(rotten, 2, "second set")
    backed_up(bs, "rotten")
    [_, second] = set_times(bs, "rotten")
    [manifest] = bs.path(BACKUPS.format("rotten")).glob(f"duplicity-inc.*.to.{second}.manifest.gpg")
    manifest.write_bytes(b"")
    shutil.rmtree(rotten.path("/var/cache/dupstack/dupstack-rotten"))  # read from the volume
    done = backup(bs, "rotten")
    assert done.returncode == 1, done.stderr
    assert f"rotten's backup is damaged: {manifest.name} on the volume cannot be read" in (
        done.stderr
    )
    assert "not left by an unfinished run" in done.stderr
    assert "the next run removes the unfinished set" not in done.stderr


def test_ext4_gone_read_only_after_an_error_mid_run_is_named_and_recovered(
    fleet: Fleet, bs: Host
) -> None:
    """The kernel's own path after a disk error: ext4 aborts (the `abort` mount option calls
    ext4_abort(), as a journal or metadata error does) and takes no more writes while its
    mount flags still say rw (`emergency_ro`, statvfs without ST_RDONLY). The run under way
    ends with exit 7 naming the read-only volume; after the hint's fsck and a new mount the
    set made just before is whole and the next run goes through. Last in the module: the
    volume is unmounted and mounted again."""
    broken, run = uploading(fleet, bs, "broken")
    first = {name: data for name, data in snapshot(broken).items() if name != "random.bin"}
    bs.run(["mount", "-o", "remount,abort", "/mnt/vdb"])
    out, err = run.communicate(timeout=120)
    mounts = bs.run(["cat", "/proc/self/mounts"]).stdout
    assert "emergency_ro" in mounts and " /mnt/vdb ext4 rw," in mounts  # the flags say rw
    assert run.returncode == 7, out + err
    assert "the backup volume /mnt/vdb is read-only" in err and "fsck" in err
    assert "internal error" not in err
    # What the hint says: unmount, fsck, mount again (the loop device went with the mount).
    for _ in range(50):
        if bs.run(["umount", "/mnt/vdb"], check=False).returncode == 0:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("/mnt/vdb stayed busy")
    device = subprocess.run(["losetup", "--find", "--show", str(fleet.dir / "vdb.img")],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    fsck = subprocess.run(["e2fsck", "-fy", device], capture_output=True, check=False)
    assert fsck.returncode in (0, 1), fsck.stdout  # 1: errors corrected
    bs.run(["mount", device, "/mnt/vdb"])
    subprocess.run(["losetup", "-d", device], check=True)  # autoclear: goes with the mount
    inventory = bs.path("/etc/duplicity/dupstack.yaml")
    document = yaml.safe_load(inventory.read_text())
    del document["hosts"]["broken"]["volsize"]
    inventory.write_text(yaml.safe_dump(document))
    # The set reported done just before survived (sealing syncs it): without that, ext4
    # lost its data and left its files empty, and every later run failed on them.
    [before] = set_times(bs, "broken")
    assert restore(bs, "broken", "/root/broken-before", time=before) == first
    done = backup(bs, "broken")  # what the aborted run wrote is cleaned up, or was lost
    assert done.returncode == 0, done.stderr
    assert status(bs, "broken")["incomplete_sets"] == 0
    assert restore(bs, "broken", "/root/broken") == snapshot(broken)

"""A tenant attacks its own history from its SFTP account: planted files never break its
backups or restores, nor another host's. And a host whose clock is off is refused.

One fleet: `bs`, hosta and hostb (full backups first). The tests run in order, as a story."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from agent.hostsetup.tenant import sftp_probe_argv
from fleet import Fleet, Host
from fleet.backup import BACKUPS, backup_server, dupctl, ok, set_host_options
from tests.agent.backup_fleet import DATA, passphrase, snapshot, status, tenant, write_files

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with Fleet() as fleet:
        backup_server(fleet)
        tenant(fleet, "hosta")
        tenant(fleet, "hostb")
        ok(dupctl(fleet.hosts["bs"], "backup", "--all"))
        yield fleet


@pytest.fixture(scope="module")
def bs(fleet: Fleet) -> Host:
    return fleet.hosts["bs"]


def plant(
    fleet: Fleet, host: Host, files: dict[str, bytes], during_a_run: bool = True, mkdir: str = ""
) -> int:
    """Upload `files` into the host's own backups folder with its own SFTP account, while
    its folder is open for writes as during one of its runs; sftp's exit code."""
    bs = fleet.hosts["bs"]
    folder = BACKUPS.format(host.name)
    commands = []
    for name, content in files.items():
        host.path(f"/tmp/{name}").write_bytes(content)
        commands.append(f"put /tmp/{name} /backups/{name}")
    if mkdir:
        commands.append(f"mkdir /backups/{mkdir}")
    argv = sftp_probe_argv(f"dup-{host.name}", (bs.address, 22))
    if during_a_run:
        bs.run(["chmod", "1770", folder])
    try:
        done = host.run(argv, input="".join(f"{c}\n" for c in commands), check=False)
    finally:
        bs.run(["chmod", "1750", folder])
    return done.returncode


def sealed_end(bs: Host, name: str) -> str:
    """The time the host's latest set ends at, from the names of its files."""
    names = sorted(os.listdir(bs.path(BACKUPS.format(name))))
    return max(n.split(".")[1] if n.startswith("duplicity-full.") else n.split(".")[3]
               for n in names if n.endswith(".manifest.gpg"))  # fmt: skip


def encrypt(bs: Host, name: str, content: bytes) -> bytes:
    """`content` encrypted with the host's own passphrase, as the host could do."""
    home = bs.path("/root/.gnupg-test")
    home.mkdir(mode=0o700, exist_ok=True)
    read, write = os.pipe()
    os.write(write, (passphrase(bs, name) + "\n").encode())
    os.close(write)
    encrypted = subprocess.run(
        ["gpg", "--batch", "--homedir", str(home), "--pinentry-mode", "loopback",
         "--passphrase-fd", str(read), "--symmetric", "-o", "-"],
        input=content, capture_output=True, pass_fds=(read,), check=True,
    ).stdout  # fmt: skip
    os.close(read)
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
    return encrypted


def test_planted_files_are_quarantined_and_the_history_stays_usable(fleet: Fleet, bs: Host) -> None:
    hosta = fleet.hosts["hosta"]
    last = sealed_end(bs, "hosta")
    soon = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y%m%dT%H%M%SZ")
    planted = {
        f"duplicity-inc.{last}.to.20991231T235959Z.manifest.gpg": os.urandom(300),
        f"duplicity-new-signatures.{last}.to.{soon}.sigtar.gpg": b"",
        f"duplicity-inc.{last}.to.{soon}.manifest.gpg": encrypt(bs, "hosta", b"not a manifest"),
        "notes.txt": b"hello\n",
    }
    assert plant(fleet, hosta, planted, during_a_run=False) != 0  # between runs: refused
    assert not (set(planted) & set(os.listdir(bs.path(BACKUPS.format("hosta")))))
    assert plant(fleet, hosta, planted) == 0
    # Reading the history before the next backup already works: restore screens first.
    restored = dupctl(bs, "restore", "hosta", "--path", DATA, "--to", "/tmp/before")
    assert restored.returncode == 0, restored.stderr
    assert snapshot(bs, f"/tmp/before{DATA}") == snapshot(hosta)
    quarantine = bs.path("/mnt/vdb/.dupstack/quarantine/hosta")
    moved = {path.name for path in quarantine.rglob("*") if path.is_file()}
    assert moved == set(planted)
    assert all(p.stat().st_mode & 0o077 == 0 for p in [quarantine, *quarantine.rglob("*")])
    write_files(hosta, 3, "after the attack", start=50)
    done = dupctl(bs, "backup", "hosta", "hostb", "--json")
    assert done.returncode == 0, done.stderr
    runs = {run["host"]: run for run in json.loads(done.stdout)}
    assert runs["hosta"]["action"] == "incremental" and runs["hostb"]["result"] == "ok"
    restored = dupctl(bs, "restore", "hosta", "--path", DATA, "--to", "/tmp/after")
    assert restored.returncode == 0, restored.stderr
    assert snapshot(bs, f"/tmp/after{DATA}") == snapshot(hosta)


PARAMIKO_PLANT = """
import sys, paramiko
address, account, name, content = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
client = paramiko.SSHClient()
client.load_host_keys("/root/.ssh/dupstack_known_hosts")
client.set_missing_host_key_policy(paramiko.RejectPolicy())
client.connect(address, username=account, key_filename="/root/.ssh/dupstack_ed25519",
               look_for_keys=False, allow_agent=False)
with client.open_sftp().open(f"/backups/{name}", "wb") as planted:
    planted.write(bytes.fromhex(content))
"""


def test_files_planted_with_paramiko_are_quarantined_too(fleet: Fleet, bs: Host) -> None:
    """The same attack through paramiko's SFTP client (the one duplicity uses), with the
    host's own key: a forged next manifest and an empty signatures file."""
    hosta = fleet.hosts["hosta"]
    last = sealed_end(bs, "hosta")
    soon = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y%m%dT%H%M%SZ")
    planted = {
        f"duplicity-inc.{last}.to.{soon}.manifest.gpg": os.urandom(300),
        f"duplicity-new-signatures.{last}.to.{soon}.sigtar.gpg": b"",
    }
    folder = BACKUPS.format("hosta")
    bs.run(["chmod", "1770", folder])  # as during one of its runs
    try:
        for name, content in planted.items():
            hosta.run([sys.executable, "-c", PARAMIKO_PLANT, bs.address, "dup-hosta", name,
                       content.hex()])  # fmt: skip
    finally:
        bs.run(["chmod", "1750", folder])
    assert set(planted) <= set(os.listdir(bs.path(folder)))
    write_files(hosta, 2, "after the paramiko attack", start=70)
    done = dupctl(bs, "backup", "hosta", "--json")
    assert done.returncode == 0, done.stderr
    [run] = json.loads(done.stdout)
    assert run["action"] == "incremental"
    assert {entry.split(":")[0] for entry in run["quarantined"]} == set(planted)
    restored = dupctl(bs, "restore", "hosta", "--path", DATA, "--to", "/tmp/paramiko")
    assert restored.returncode == 0, restored.stderr
    assert snapshot(bs, f"/tmp/paramiko{DATA}") == snapshot(hosta)


def test_planting_during_the_next_run_is_caught_before_sealing(fleet: Fleet, bs: Host) -> None:
    hosta = fleet.hosts["hosta"]
    assert (
        plant(fleet, hosta, {"duplicity-full.20991231T235959Z.manifest.gpg": os.urandom(64)}) == 0
    )
    done = dupctl(bs, "backup", "hosta")
    assert done.returncode == 0, done.stderr
    assert "hosta: quarantined duplicity-full.20991231T235959Z.manifest.gpg: " in done.stdout
    record = status(bs, "hosta")["last_run"]
    assert record["quarantined"] == [
        "duplicity-full.20991231T235959Z.manifest.gpg: dated in the future"
    ]
    assert status(bs, "hosta")["error"] is None


def test_names_duplicity_would_misread_are_refused(fleet: Fleet, bs: Host) -> None:
    """A second "volume 1" (vol01) of a sealed set, or an impossible date, would make every
    later duplicity of the host fail: neither joins the history."""
    hosta = fleet.hosts["hosta"]
    full = next(n for n in os.listdir(bs.path(BACKUPS.format("hosta")))
                if n.startswith("duplicity-full.") and n.endswith(".manifest.gpg"))  # fmt: skip
    stamp = full.split(".")[1]
    planted = {
        f"duplicity-full.{stamp}.vol01.difftar.gpg": os.urandom(100),
        f"duplicity-full.{stamp}.vol9.difftar.gpg": os.urandom(100),
        "duplicity-full.20261131T000000Z.manifest.gpg": os.urandom(100),
    }
    assert plant(fleet, hosta, planted) == 0
    assert plant(fleet, hosta, {}, mkdir="hidden") != 0  # no folders of its own
    done = dupctl(bs, "backup", "hosta")
    assert done.returncode == 0, done.stderr
    reasons = dict(line.split(": ", 1) for line in status(bs, "hosta")["last_run"]["quarantined"])
    assert reasons == {
        f"duplicity-full.{stamp}.vol01.difftar.gpg": "not a file duplicity writes",
        f"duplicity-full.{stamp}.vol9.difftar.gpg":
            "adds to a set that is already complete (its manifest is sealed)",
        "duplicity-full.20261131T000000Z.manifest.gpg": "not a real date and time",
    }  # fmt: skip
    ok(dupctl(bs, "status", "hosta"))
    assert dupctl(bs, "host", "remove", "x/../../etc").returncode == 2


def test_a_host_whose_clock_is_off_is_refused(fleet: Fleet, bs: Host) -> None:
    hostb = fleet.hosts["hostb"]
    fake = hostb.path("/usr/local/bin/date")
    fake.write_text('#!/bin/sh\nexec /usr/bin/date -d "+3650 days" "$@"\n')
    fake.chmod(0o755)
    before = status(bs, "hostb")["sets"]
    try:
        done = dupctl(bs, "backup", "hostb")
    finally:
        fake.unlink()
    assert done.returncode == 11, done.stderr
    assert "hostb's clock is 87600.0 h ahead of this server's" in done.stderr
    assert "timedatectl set-ntp true" in done.stderr
    assert status(bs, "hostb")["sets"] == before


def test_what_a_host_planted_counts_against_its_quota(fleet: Fleet, bs: Host) -> None:
    """Quarantined files were the host's and still take room: planting run after run must
    not fill the volume past its quota."""
    hosta = fleet.hosts["hosta"]
    assert plant(fleet, hosta, {"filler.bin": os.urandom(3 << 20)}) == 0
    ok(dupctl(bs, "backup", "hosta"))  # screened: moved to the quarantine
    used = int(bs.run(["du", "-sb", BACKUPS.format("hosta")]).stdout.split()[0])
    set_host_options(bs, "hosta", quota=f"{used // 1024 + 1024}K")  # 1 MiB room in its sets
    try:
        done = dupctl(bs, "backup", "hosta")
        assert done.returncode == 14, done.stderr
        assert "and its quarantine 3.0 MiB of " in done.stderr
        assert "quarantine (dupctl status) may be deleted" in done.stderr
    finally:
        set_host_options(bs, "hosta", quota=None)
    shutil.rmtree(bs.path("/mnt/vdb/.dupstack/quarantine/hosta"))
    ok(dupctl(bs, "backup", "hosta"))


def test_a_host_over_its_quota_is_stopped_alone(fleet: Fleet, bs: Host) -> None:
    hosta = fleet.hosts["hosta"]
    used = int(bs.run(["du", "-sb", BACKUPS.format("hosta")]).stdout.split()[0])
    set_host_options(bs, "hosta", quota=f"{used // 1024 + 64}K")  # 64 KiB of room left
    big = hosta.path(f"{DATA}/big.bin")
    big.write_bytes(os.urandom(8 << 20))  # incompressible: 8 MiB to upload
    try:
        done = dupctl(bs, "backup", "hosta", "hostb", "--json")
        assert done.returncode == 14, done.stderr
        runs = {run["host"]: run for run in json.loads(done.stdout)}
        assert runs["hosta"]["result"] == "failed"
        assert runs["hosta"]["error"].startswith("hosta is over its quota: its sets take")
        assert runs["hostb"]["result"] == "ok"  # the other host is not touched
        assert "raise hosts.hosta.quota in the inventory" in done.stderr
        assert "what this run wrote was removed, nothing was backed up" in done.stderr
        again = dupctl(bs, "backup", "hosta")  # the same run again: stopped again
        assert again.returncode == 14, again.stderr
        assert status(bs, "hosta")["incomplete_sets"] == 0  # nothing half-written is left
    finally:
        big.unlink()
        set_host_options(bs, "hosta", quota=None)
    after = dupctl(bs, "backup", "hosta")
    assert after.returncode == 0, after.stderr  # the stopped run's files are cleaned up
    mode = bs.path(BACKUPS.format("hosta")).stat().st_mode & 0o7777
    assert mode == 0o1750  # closed again after every run
    restored = dupctl(bs, "restore", "hosta", "--path", DATA, "--to", "/tmp/quota")
    assert restored.returncode == 0, restored.stderr
    assert snapshot(bs, f"/tmp/quota{DATA}") == snapshot(hosta)
    assert status(bs, "hostb")["last_run"]["result"] == "ok"


def test_a_host_without_a_quota_is_held_to_its_share(fleet: Fleet, bs: Host) -> None:
    """No quota given: each of the two hosts may take half of the volume less the reserve
    (here a reserve that leaves 60 MiB, so that a share is 30 MiB). A host that tries to fill
    the volume (a file bigger than its share) is stopped alone; the other's run at the same
    time goes through."""
    hosta = fleet.hosts["hosta"]
    inventory = bs.path("/etc/duplicity/dupstack.yaml")
    original = inventory.read_text()
    volume = os.statvfs(bs.path("/mnt/vdb"))
    reserve = volume.f_blocks * volume.f_frsize - (60 << 20)
    document = yaml.safe_load(original)
    document["server"]["reserve"] = f"{reserve // 1024}K"
    inventory.write_text(yaml.safe_dump(document))
    big = hosta.path(f"{DATA}/filler.bin")
    try:
        share = status(bs, "hosta")["limit"]
        assert status(bs, "hosta")["limit_from"] == "share" and share == 30 << 20
        big.write_bytes(os.urandom(share + (2 << 20)))  # incompressible: more than its share
        done = dupctl(bs, "backup", "hosta", "hostb", "--json", "--jobs", "2")
        assert done.returncode == 14, done.stderr
        runs = {run["host"]: run for run in json.loads(done.stdout)}
        assert runs["hosta"]["error"].startswith("hosta is over its share of the volume: ")
        assert runs["hostb"]["result"] == "ok"
        assert "give it a quota (hosts.hosta.quota in the inventory)" in done.stderr
        assert status(bs, "hosta")["incomplete_sets"] == 0  # what it wrote was removed
    finally:
        big.unlink(missing_ok=True)
        inventory.write_text(original)
    ok(dupctl(bs, "backup", "hosta"))

"""A tenant attacks its own history from its SFTP account: planted files never break its
backups or restores, nor another host's. And a host whose clock is off is refused.

One fleet: `bs`, hosta and hostb (full backups first). The tests run in order, as a story."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from agent.hostsetup.tenant import sftp_probe_argv
from fleet import Fleet, Host
from fleet.backup import BACKUPS, backup_server, dupctl, ok
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


def plant(fleet: Fleet, host: Host, files: dict[str, bytes]) -> None:
    """Upload `files` into the host's own backups folder with its own SFTP account."""
    bs = fleet.hosts["bs"]
    commands = []
    for name, content in files.items():
        host.path(f"/tmp/{name}").write_bytes(content)
        commands.append(f"put /tmp/{name} /backups/{name}")
    argv = sftp_probe_argv(f"dup-{host.name}", (bs.address, 22))
    done = host.run(argv, input="".join(f"{c}\n" for c in commands), check=False)
    assert done.returncode == 0, done.stderr


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
    plant(fleet, hosta, planted)
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


def test_planting_during_the_next_run_is_caught_before_sealing(fleet: Fleet, bs: Host) -> None:
    hosta = fleet.hosts["hosta"]
    plant(fleet, hosta, {"duplicity-full.20991231T235959Z.manifest.gpg": os.urandom(64)})
    done = dupctl(bs, "backup", "hosta")
    assert done.returncode == 0, done.stderr
    assert "hosta: quarantined duplicity-full.20991231T235959Z.manifest.gpg: " in done.stdout
    record = status(bs, "hosta")["last_run"]
    assert record["quarantined"] == [
        "duplicity-full.20991231T235959Z.manifest.gpg: dated in the future"
    ]
    assert status(bs, "hosta")["error"] is None


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

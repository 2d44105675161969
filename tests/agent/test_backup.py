"""`dupctl backup` on a backup server with real sshd and duplicity, against real tenant hosts.

One fleet for the module: the backup server `bs` (after `dupctl init`) and tenants web1, web2
(host added, /home/app backed up). The tests run in order, as a story: full, then incremental.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fleet import Fleet, Host
from fleet.backup import BACKUPS, backup_server
from tests.agent.backup_fleet import (
    DATA,
    dupctl,
    passphrase,
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
        tenant(fleet, "web1")
        tenant(fleet, "web2")
        yield fleet


@pytest.fixture(scope="module")
def bs(fleet: Fleet) -> Host:
    return fleet.hosts["bs"]


def files(bs: Host, name: str) -> list[str]:
    """`owner:group mode name` of every file in the host's backups folder."""
    listing = bs.run(["sh", "-c", f"cd {BACKUPS.format(name)} && stat -c '%U:%G %a %n' *"])
    return listing.stdout.splitlines()


def test_all_hosts_are_backed_up_in_parallel_and_sealed(fleet: Fleet, bs: Host) -> None:
    done = dupctl(bs, "backup", "--all", "--jobs", "2")
    assert done.returncode == 0, done.stderr
    assert re.search(r"web1 +ok +full +\d+\.\d s", done.stdout)
    assert re.search(r"web2 +ok +full +\d+\.\d s", done.stdout)
    runs = [status(bs, name)["last_run"] for name in ("web1", "web2")]
    assert runs[0]["start"] <= runs[1]["end"] and runs[1]["start"] <= runs[0]["end"]  # at once
    for name in ("web1", "web2"):
        sealed = files(bs, name)
        assert len(sealed) == 3  # manifest, signatures, one volume
        assert all(line.startswith(f"root:dup-{name} 440 duplicity-full") for line in sealed)


def test_an_incremental_backup_extends_the_chain(fleet: Fleet, bs: Host) -> None:
    write_files(fleet.hosts["web1"], 3, "v2")
    done = dupctl(bs, "backup", "web1", "--json")
    assert done.returncode == 0, done.stderr
    [run] = json.loads(done.stdout)
    assert (run["host"], run["action"], run["result"], run["error"]) == (
        "web1", "incremental", "ok", None,
    )  # fmt: skip
    assert all(" 440 " in line for line in files(bs, "web1"))
    web1 = status(bs, "web1")
    assert (web1["chains"], web1["sets"], web1["chain_length"]) == (1, 2, 2)
    assert web1["last_run"] == run
    assert (status(bs, "web2")["chains"], status(bs, "web2")["sets"]) == (1, 1)


def test_each_run_has_its_own_root_only_log(bs: Host) -> None:
    logs = sorted(bs.path("/var/log/dupstack/web1").iterdir())
    assert len(logs) == 2
    assert re.fullmatch(r"\d{8}T\d{6}Z\.log", logs[-1].name)
    assert {log.stat().st_mode & 0o777 for log in logs} == {0o600}
    text = logs[-1].read_text()
    assert "duplicity backup --name dupstack-web1" in text
    assert "Duplicity backup complete." in text


def test_without_a_terminal_progress_is_plain_lines(bs: Host) -> None:
    done = dupctl(bs, "backup", "web2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:3] == [
        f"web2: connecting to {bs.fleet.hosts['web2'].address}",
        f"web2: backing up {DATA}",
        done.stdout.splitlines()[2],
    ]
    assert re.fullmatch(r"web2: ok \(incremental, \d+\.\d s\)", done.stdout.splitlines()[2])
    assert "\x1b[" not in done.stdout


def test_a_second_run_of_the_same_host_is_refused(bs: Host) -> None:
    lock = bs.path("/var/lib/dupstack/locks/web1.lock")
    with lock.open("r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running dupctl holds it
        held.write(f"{os.getpid()}\n")
        held.flush()
        before = status(bs, "web1")["last_run"]
        done = dupctl(bs, "backup", "web1", "web2")
    assert done.returncode == 12
    assert f"web1: another dupctl run (pid {os.getpid()}) holds " in done.stderr
    assert re.search(r"web2 +ok +incremental", done.stdout)  # the other host went on
    assert status(bs, "web1")["last_run"] == before  # the running one records its own outcome


def test_no_secret_in_any_command_line_log_or_status(fleet: Fleet, bs: Host) -> None:
    write_files(fleet.hosts["web1"], 200, "v3")
    argv = ["dupctl", "backup", "--all", "--full"]
    run = subprocess.Popen(bs.keeper.nsenter(argv), stdout=subprocess.PIPE, text=True)
    command_lines: set[bytes] = set()
    while run.poll() is None:  # the fleet shares this machine's PID namespace
        for cmdline in (Path("/proc") / p / "cmdline" for p in os.listdir("/proc") if p.isdigit()):
            try:
                command_lines.add(cmdline.read_bytes())
            except OSError:
                pass
    assert run.returncode == 0, run.stdout.read() if run.stdout else ""
    assert any(b"duplicity\0full\0--name\0dupstack-web1" in line for line in command_lines)
    secrets = [passphrase(bs, name).encode() for name in ("web1", "web2")]
    secrets.append(bs.path("/etc/duplicity/passphrase").read_bytes().strip())
    for line in command_lines:
        assert not any(secret in line for secret in secrets)
    written = [*bs.path("/var/log/dupstack").rglob("*.log"),
               *bs.path("/var/lib/dupstack/status").iterdir()]  # fmt: skip
    assert len(written) >= 8
    for file in written:
        assert not any(secret in file.read_bytes() for secret in secrets), file


def test_hosts_must_be_named(bs: Host) -> None:
    assert dupctl(bs, "backup").returncode == 2
    assert dupctl(bs, "backup", "web1", "--all").returncode == 2
    unknown = dupctl(bs, "backup", "nope")
    assert unknown.returncode == 2
    assert "no host 'nope'" in unknown.stderr


def open_modes(root: Path) -> list[str]:
    """Everything under `root` that group or others may read, write or enter."""
    return [
        f"{oct(path.lstat().st_mode & 0o777)} {path}"
        for path in [root, *root.rglob("*")]
        if not path.is_symlink() and path.lstat().st_mode & 0o077
    ]


def test_duplicitys_caches_are_root_only_here_and_on_the_host(fleet: Fleet, bs: Host) -> None:
    web1 = fleet.hosts["web1"]
    host_cache, server_cache = web1.path("/var/cache/dupstack"), bs.path("/var/cache/dupstack")
    ok_run = dupctl(bs, "status")  # reads the sets here: duplicity fills the server's cache
    assert ok_run.returncode == 0, ok_run.stderr
    assert any(host_cache.rglob("*.manifest")) and any(server_cache.rglob("*"))
    assert open_modes(host_cache) == [] and open_modes(server_cache) == []
    nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
    peek = web1.run([*nobody, "find", "/var/cache/dupstack"], check=False)
    assert peek.returncode != 0 and "Permission denied" in peek.stderr
    assert "manifest" not in peek.stdout
    # A cache an older release left readable is closed by the next run.
    web1.run(["chmod", "-R", "go+rX", "/var/cache/dupstack"])
    assert open_modes(host_cache)
    done = dupctl(bs, "backup", "web1")
    assert done.returncode == 0, done.stderr
    assert open_modes(host_cache) == []


def test_each_file_is_keyed_with_the_small_s2k_count_and_stock_gpg_reads_it(bs: Host) -> None:
    """Every file of web1's sets derives its key from the passphrase with 65,536 bytes of
    S2K (not gpg-agent's calibrated millions: ~0.1-0.3 s a file), and plain gpg with the
    host's passphrase decrypts them."""
    folder = bs.path(BACKUPS.format("web1"))
    names = sorted(folder.glob("duplicity-*.gpg"))
    assert len(names) >= 6  # the full (3 files) and the incrementals so far
    with tempfile.TemporaryDirectory(prefix="dupstack-s2k-", dir="/tmp") as home:
        for path in names:
            listed = subprocess.run(
                ["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback",
                 "--passphrase-fd", "0", "--list-packets", str(path)],
                input=passphrase(bs, "web1") + "\n", capture_output=True, text=True,
            )  # fmt: skip
            assert listed.returncode == 0, listed.stderr
            assert re.search(r"salt [0-9A-F]{16}, count 65536 \(96\)", listed.stdout), path.name
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], check=False)


def test_the_backup_paths_knobs_in_the_inventory_are_used_and_restore(
    fleet: Fleet, bs: Host
) -> None:
    """web2 with two uploads at once, no compression and 1 MiB volumes: a full and an
    incremental made that way verify and restore as they were."""
    web2 = fleet.hosts["web2"]
    inventory = bs.path("/etc/duplicity/dupstack.yaml")
    original = inventory.read_text()
    document = yaml.safe_load(original)
    document["hosts"]["web2"].update(concurrency=2, compression="none", volsize=1)
    inventory.write_text(yaml.safe_dump(document))
    zeros = web2.path(f"{DATA}/zeros.bin")
    zeros.write_bytes(bytes(3 << 20))  # gpg's default compression makes it a few KiB
    try:
        done = dupctl(bs, "backup", "web2", "--full", "--json")
        assert done.returncode == 0, done.stderr
        [run] = json.loads(done.stdout)
        argv = next(line for line in Path(bs.path(run["log"])).read_text().splitlines()
                    if line.startswith("dupctl: on web2: duplicity full"))  # fmt: skip
        assert "--concurrency 2" in argv and " --gpg-options=--compress-algo=none " in argv
        folder = bs.path(BACKUPS.format("web2"))
        newest = max(f.name.split(".")[1] for f in folder.glob("duplicity-full.*.manifest.gpg"))
        volumes = list(folder.glob(f"duplicity-full.{newest}.vol*.difftar.gpg"))
        assert len(volumes) >= 3  # 1 MiB each
        assert sum(f.stat().st_size for f in volumes) > 3 << 20  # stored as it was: no compression
        write_files(web2, 2, "knobs", start=100)
        again = dupctl(bs, "backup", "web2", "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)[0]["action"] == "incremental"
        verified = dupctl(bs, "verify", "web2")
        assert verified.returncode == 0, verified.stderr
        expected = snapshot(web2)
        restored = dupctl(bs, "restore", "web2", "--path", DATA, "--to", "/tmp/knobs")
        assert restored.returncode == 0, restored.stderr
        assert snapshot(bs, f"/tmp/knobs{DATA}") == expected
    finally:
        inventory.write_text(original)
        zeros.unlink()

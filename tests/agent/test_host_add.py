"""`dupctl host add|list|remove` on a backup server with real sshd, against real tenant hosts.

One fleet for the module: the backup server `bs` (volume at /mnt/vdb) and tenants web1, web2
added once; other tests add hosts of their own, so each reads as a stand-alone story.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agent.hostsetup.tenant import sftp_probe_argv
from agent.repository import TENANT_KEY
from fleet import SUBNET, Fleet, Host

pytestmark = pytest.mark.root
BS_KEY = "/etc/duplicity/ssh/id_ed25519"
HOSTS = "/mnt/vdb/hosts"


def dupctl(bs: Host, *args: str) -> subprocess.CompletedProcess[str]:
    """dupctl on the backup server, stdin not a terminal."""
    return bs.run(["dupctl", *args], input="", check=False)


def add(bs: Host, host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    return dupctl(bs, "host", "add", host.name, "--address", host.address, *args)


def sftp(tenant: Host, bs: Host, account: str, *commands: str) -> subprocess.CompletedProcess:
    """An sftp batch from `tenant` as `account`, with the SFTP key host add gave it."""
    argv = sftp_probe_argv(account, (bs.address, 22))
    return tenant.run(argv, input="".join(f"{command}\n" for command in commands), check=False)


def fingerprint(host: Host) -> str:
    return host.run(["ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.split()[1]


def inventory(bs: Host) -> dict:
    return yaml.safe_load(bs.path("/etc/duplicity/dupstack.yaml").read_text())


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with Fleet() as fleet:
        fleet.add_host("bs", volume=fleet.dir / "vdb.img").start_sshd()
        yield fleet


@pytest.fixture(scope="module")
def bs(fleet: Fleet) -> Host:
    return fleet.hosts["bs"]


@pytest.fixture(scope="module")
def first_contact(fleet: Fleet, bs: Host) -> subprocess.CompletedProcess[str]:
    """The very first `host add`: this server's key is new, web1 does not know it yet."""
    web1 = fleet.add_host("web1")
    web1.start_sshd()
    return add(bs, web1, "--server-address", bs.address)


def tenant(fleet: Fleet, name: str, duplicity: bool = True) -> Host:
    """A new tenant host with sshd, where the backup server's key is authorized."""
    host = fleet.add_host(name, duplicity=duplicity)
    host.start_sshd()
    host.authorize(fleet.hosts["bs"].path(f"{BS_KEY}.pub").read_text())
    return host


@pytest.fixture(scope="module")
def added(fleet: Fleet, bs: Host, first_contact) -> dict[str, subprocess.CompletedProcess[str]]:
    """web1 and web2, added."""
    web1 = fleet.hosts["web1"]
    web1.authorize(bs.path(f"{BS_KEY}.pub").read_text())
    web2 = tenant(fleet, "web2")
    return {
        "web1": add(
            bs,
            web1,
            "--path",
            "/etc",
            "--path",
            "/root",
            "--exclude",
            "/root/.cache",
            "--server-address",
            bs.address,
        ),
        "web2": add(bs, web2),
    }


def test_a_host_that_refuses_the_servers_key_names_the_key_to_authorize(bs, first_contact):
    assert first_contact.returncode == 10
    key = bs.path(f"{BS_KEY}.pub").read_text().strip()
    assert f"dupctl: hint: authorize this key on web1 (~root/.ssh/authorized_keys): {key}" in (
        first_contact.stderr
    )
    assert f"made: authorize it on each host: {key}" in first_contact.stdout


def test_hosts_are_added_with_chrooted_sftp_accounts(fleet: Fleet, bs: Host, added) -> None:
    for name, done in added.items():
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1].startswith(f"host add {name}: ")
        account = f"dup-{name}"
        entry = bs.run(["getent", "passwd", account]).stdout.strip().split(":")
        assert entry[5:] == ["/", "/usr/sbin/nologin"]
        assert bs.run(["id", "-nG", account]).stdout.split() == [account, "dupstack-sftp"]
        chroot = bs.run(
            ["stat", "-c", "%U:%G %a", f"{HOSTS}/{account}", f"{HOSTS}/{account}/backups"]
        )
        # 1750: the host may add files only during its runs (agent/quota.py), when it is 1770
        assert chroot.stdout.splitlines() == ["root:root 755", f"root:{account} 1750"]
        host = fleet.hosts[name]
        files = host.run(["stat", "-c", "%a", TENANT_KEY, "/root/.ssh/dupstack_known_hosts"])
        assert files.stdout.split() == ["600", "600"]
        pinned = host.path("/root/.ssh/dupstack_known_hosts").read_text().split()
        assert pinned == [bs.address, *bs.host_key_pub.split()[:2]]
    hosts = inventory(bs)["hosts"]
    assert hosts["web1"] == {
        "address": fleet.hosts["web1"].address,
        "paths": ["/etc", "/root"],
        "excludes": ["/root/.cache"],
    }
    assert hosts["web2"] == {"address": fleet.hosts["web2"].address}
    assert inventory(bs)["server"] == {"address": bs.address}


def test_host_list_shows_hosts_and_their_pinned_keys(fleet: Fleet, bs: Host, added) -> None:
    listed = {
        host["name"]: host for host in json.loads(dupctl(bs, "host", "list", "--json").stdout)
    }
    assert listed["web1"]["paths"] == ["/etc", "/root"]
    assert listed["web2"]["host_key"] == fingerprint(fleet.hosts["web2"])
    table = dupctl(bs, "host", "list").stdout
    assert re.search(r"web2 +10\.77\.0\.\d+ +root +22 +/etc", table)
    assert fingerprint(fleet.hosts["web1"]) in table.replace("\n", "").replace(" ", "")


def test_a_host_cannot_reach_another_hosts_backups(fleet: Fleet, bs: Host, added) -> None:
    web1 = fleet.hosts["web1"]
    bs.run(["sh", "-c", f"echo secret > {HOSTS}/dup-web2/backups/theirs"])
    # web1's key does not open web2's account.
    assert sftp(web1, bs, "dup-web2", "ls /backups").returncode != 0
    # Inside its own chroot, web1 sees nothing but its own folder.
    listing = sftp(web1, bs, "dup-web1", "ls -a /", "ls -a /..")
    assert listing.returncode == 0, listing.stderr
    assert "dup-web2" not in listing.stdout
    for attempt in (
        "ls /mnt/vdb/hosts/dup-web2/backups",
        "get /mnt/vdb/hosts/dup-web2/backups/theirs /tmp/stolen",
        "get ../dup-web2/backups/theirs /tmp/stolen",
        "put /etc/hostname /mnt/vdb/hosts/dup-web2/backups/planted",
        "put /etc/hostname ../dup-web2/backups/planted",
    ):
        assert sftp(web1, bs, "dup-web1", attempt).returncode != 0, attempt
    assert not web1.path("/tmp/stolen").exists()
    assert bs.run(["ls", f"{HOSTS}/dup-web2/backups"]).stdout.split() == ["theirs"]


def test_a_sealed_backup_file_cannot_be_deleted_renamed_or_overwritten(
    fleet: Fleet, bs: Host, added
) -> None:
    web1 = fleet.hosts["web1"]
    web1.run(["sh", "-c", "echo 'volume 1' > /tmp/vol1"])
    outside = sftp(web1, bs, "dup-web1", "put /tmp/vol1 /backups/duplicity-full.vol1.difftar.gpg")
    assert outside.returncode != 0  # no run of web1 holds its lock: nothing can be added
    bs.run(["chmod", "1770", f"{HOSTS}/dup-web1/backups"])  # as during a run of web1
    put = sftp(web1, bs, "dup-web1", "put /tmp/vol1 /backups/duplicity-full.vol1.difftar.gpg")
    bs.run(["chmod", "1750", f"{HOSTS}/dup-web1/backups"])
    assert put.returncode == 0, put.stderr
    sealed = f"{HOSTS}/dup-web1/backups/duplicity-full.vol1.difftar.gpg"
    bs.run(["chown", "root:dup-web1", sealed])  # what the server does after each run
    bs.run(["chmod", "0440", sealed])
    name = "/backups/duplicity-full.vol1.difftar.gpg"
    for attempt in (
        f"rm {name}",
        f"rename {name} /backups/moved",
        f"put /etc/hostname {name}",
        f"chmod 0666 {name}",
    ):
        assert sftp(web1, bs, "dup-web1", attempt).returncode != 0, attempt
    assert sftp(web1, bs, "dup-web1", f"get {name} /tmp/back").returncode == 0  # still readable
    assert web1.path("/tmp/back").read_text() == "volume 1\n"
    assert bs.run(["cat", sealed]).stdout == "volume 1\n"


def test_adding_a_host_again_changes_nothing(fleet: Fleet, bs: Host, added) -> None:
    before = bs.path("/etc/duplicity/dupstack.yaml").read_bytes()
    reloads = (fleet.dir / "bs.sshd.log").read_text().count("Received SIGHUP")
    again = add(bs, fleet.hosts["web1"], "--path", "/etc", "--path", "/root")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "host add web1: nothing changed"
    assert bs.path("/etc/duplicity/dupstack.yaml").read_bytes() == before
    assert (fleet.dir / "bs.sshd.log").read_text().count("Received SIGHUP") == reloads


def test_a_changed_host_key_is_refused_until_re_pinned(fleet: Fleet, bs: Host, added) -> None:
    rebuilt = tenant(fleet, "rebuilt")
    assert add(bs, rebuilt).returncode == 0
    old = fingerprint(rebuilt)
    rebuilt.start_sshd()  # a new host key, as after a rebuild (or an impostor)
    new = fingerprint(rebuilt)
    refused = add(bs, rebuilt)
    assert refused.returncode == 9
    assert f"offered SSH host key {new}, but {old} is pinned: refusing" in refused.stderr
    assert f"dupctl host add rebuilt --address {rebuilt.address} --host-key FILE" in (
        refused.stderr
    )
    bs.path("/root/rebuilt.pub").write_text(fleet.hosts["web2"].host_key_pub)
    wrong = add(bs, rebuilt, "--host-key", "/root/rebuilt.pub")
    assert wrong.returncode == 9  # a given key is pinned, but still checked
    bs.path("/root/rebuilt.pub").write_text(rebuilt.host_key_pub)
    re_pinned = add(bs, rebuilt, "--host-key", "/root/rebuilt.pub")
    assert re_pinned.returncode == 0, re_pinned.stderr
    assert f"{new} (given by --host-key)" in re_pinned.stdout


@pytest.mark.parametrize("found", [None, "0.8.22"], ids=["none", "old"])
def test_a_host_without_duplicity_3_is_refused(
    fleet: Fleet, bs: Host, added, found: str | None
) -> None:
    host = tenant(fleet, "old" if found else "bare", duplicity=False)
    if found:  # Debian 12's own duplicity
        script = host.path("/usr/local/bin/duplicity")
        script.write_text(f"#!/bin/sh\necho duplicity {found}\n")
        script.chmod(0o755)
    refused = add(bs, host)
    assert refused.returncode == 11
    seen = f"duplicity {found}" if found else "no duplicity"
    assert f"{host.name}: {seen} found; backups need duplicity >= 3.0" in refused.stderr
    assert "rerun with --install" in refused.stderr
    assert bs.run(["id", f"dup-{host.name}"], check=False).returncode != 0
    assert host.name not in inventory(bs)["hosts"]


@pytest.mark.parametrize("how", ["stop", "down"])
def test_a_dead_host_is_named(fleet: Fleet, bs: Host, added, how: str) -> None:
    host = tenant(fleet, f"dead-{how}")
    getattr(host, how)()
    started = time.monotonic()
    dead = add(bs, host, "--timeout", "1")
    assert dead.returncode == 8
    assert f"host dead-{how} ({host.address}:22) is unreachable" in dead.stderr
    assert time.monotonic() - started < 5


def test_no_secret_appears_in_any_command_line(fleet: Fleet, bs: Host, added) -> None:
    watched = tenant(fleet, "watched")
    argv = ["dupctl", "host", "add", watched.name, "--address", watched.address]
    run = subprocess.Popen(bs.keeper.nsenter(argv), stdout=subprocess.PIPE, text=True)
    command_lines: set[bytes] = set()
    while run.poll() is None:
        for cmdline in (
            Path("/proc") / pid / "cmdline" for pid in os.listdir("/proc") if pid.isdigit()
        ):
            try:
                command_lines.add(cmdline.read_bytes())
            except OSError:
                pass
    assert run.returncode == 0, run.stdout.read() if run.stdout else ""
    # It did watch host add, and the probe (the longest-lived command on the host).
    assert any(b"host\0add\0watched" in line for line in command_lines)
    assert any(b"sftp\0-b" in line for line in command_lines)
    secrets = [
        line.encode()
        for key in (watched.path(TENANT_KEY), bs.path(BS_KEY))
        for line in key.read_text().splitlines()
        if "PRIVATE KEY" not in line
    ]
    assert len(secrets) > 4
    for line in command_lines:
        assert b"PRIVATE KEY" not in line
        assert not any(secret in line for secret in secrets)


def test_removing_a_host_keeps_its_backups_unless_purged(fleet: Fleet, bs: Host, added) -> None:
    gone = tenant(fleet, "gone")
    assert add(bs, gone).returncode == 0
    bs.run(["touch", f"{HOSTS}/dup-gone/backups/duplicity-full.manifest"])
    removed = dupctl(bs, "host", "remove", "gone")
    assert removed.returncode == 0, removed.stderr
    assert "dup-gone kept (delete with --purge)" in removed.stdout
    assert bs.run(["id", "dup-gone"], check=False).returncode != 0
    assert not bs.path("/etc/ssh/dupstack/authorized_keys/dup-gone").exists()
    assert gone.address not in bs.path("/etc/duplicity/ssh/known_hosts").read_text()
    assert set(inventory(bs)["hosts"]) >= {"web1", "web2"} and "gone" not in inventory(bs)["hosts"]
    assert bs.path(f"{HOSTS}/dup-gone/backups/duplicity-full.manifest").exists()
    again = dupctl(bs, "host", "remove", "gone")
    assert again.stdout.splitlines()[-1] == "host remove gone: nothing to remove"
    unconfirmed = dupctl(bs, "host", "remove", "gone", "--purge")
    assert unconfirmed.returncode == 2
    assert "add --yes to confirm" in unconfirmed.stderr
    assert bs.path(f"{HOSTS}/dup-gone").exists()
    purged = dupctl(bs, "host", "remove", "gone", "--purge", "--yes")
    assert purged.returncode == 0, purged.stderr
    assert not bs.path(f"{HOSTS}/dup-gone").exists()


def test_an_address_change_shows_the_new_key_before_pinning_it(
    fleet: Fleet, bs: Host, added
) -> None:
    web2 = fleet.hosts["web2"]
    moved = f"{SUBNET}.99"
    web2.run(["ip", "addr", "add", f"{moved}/24", "dev", "eth0"])
    known = bs.path("/etc/duplicity/ssh/known_hosts")
    before = (known.read_text(), bs.path("/etc/duplicity/dupstack.yaml").read_text())
    refused = dupctl(bs, "host", "add", "web2", "--address", moved)
    assert refused.returncode == 9
    assert (
        f"web2 moves from {web2.address} to {moved}, where it offers SSH host key "
        f"{fingerprint(web2)}: not pinned yet"
    ) in refused.stderr
    assert "rerun with --accept-new-host-key" in refused.stderr
    assert (known.read_text(), bs.path("/etc/duplicity/dupstack.yaml").read_text()) == before
    accepted = dupctl(bs, "host", "add", "web2", "--address", moved, "--accept-new-host-key")
    assert accepted.returncode == 0, accepted.stderr
    assert f"(accepted at the new address (was {web2.address}))" in accepted.stdout
    assert inventory(bs)["hosts"]["web2"]["address"] == moved
    pins = [line.split()[0] for line in known.read_text().splitlines()]
    assert moved in pins and web2.address not in pins  # the old address's pin is gone
    again = dupctl(bs, "host", "add", "web2", "--address", moved)
    assert (
        again.returncode == 0 and again.stdout.splitlines()[-1] == "host add web2: nothing changed"
    )


def test_a_re_added_host_gets_its_sealed_files_back_under_its_new_group(
    fleet: Fleet, bs: Host, added
) -> None:
    back = tenant(fleet, "back")
    assert add(bs, back).returncode == 0
    sealed = f"{HOSTS}/dup-back/backups/duplicity-full.20260101T000000Z.manifest.gpg"
    bs.run(["sh", "-c", f"echo manifest > {sealed} && chown root:dup-back {sealed} && "
            f"chmod 0440 {sealed}"])  # fmt: skip
    old_gid = bs.path(sealed).stat().st_gid
    assert dupctl(bs, "host", "remove", "back").returncode == 0
    bs.run(["groupadd", "--system", "--gid", str(old_gid), "squatter"])  # the old gid is taken
    readded = add(bs, back)
    assert readded.returncode == 0, readded.stderr
    assert "1 sealed file(s) given group dup-back" in readded.stdout
    new_gid = int(bs.run(["getent", "group", "dup-back"]).stdout.split(":")[2])
    assert new_gid != old_gid and bs.path(sealed).stat().st_gid == new_gid
    read = sftp(back, bs, "dup-back", f"get /backups/{Path(sealed).name} /tmp/got")
    assert read.returncode == 0, read.stderr
    assert back.path("/tmp/got").read_text() == "manifest\n"


def state(bs: Host, host: Host, account: str) -> tuple[object, ...]:
    """What a host add could leave behind, on the server and on the host."""
    return (
        bs.run(["id", account], check=False).returncode,
        bs.path(f"/etc/ssh/dupstack/authorized_keys/{account}").exists(),
        bs.path(f"{HOSTS}/{account}").exists(),
        host.address in bs.path("/etc/duplicity/ssh/known_hosts").read_text(),
        host.path(TENANT_KEY).exists(),
        bs.path("/etc/duplicity/dupstack.yaml").read_text(),
    )


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--path", "relative"], "--path: expected an absolute path like /var/www"),
        (["--path", "/opt/data/"], "--path: expected an absolute path like /var/www"),
        (["--exclude", "/var/x"], "--exclude: '/var/x' is not inside any path of host"),
        (["--address", "10.0.0.5; rm -rf /"], None),
        (["--address", "caf\udcff"], None),
        (["--user", "Root!"], "--user: expected a user name like root or debian"),
        (["--port", "0"], "argument --port: 0 is not between 1 and 65535"),
        (["--timeout", "-1"], "argument --timeout: -1 is not between 0.1 and 3600"),
        (["--timeout", "nan"], "argument --timeout: nan is not between 0.1 and 3600"),
        (["--host-key", "/dev/zero"], "--host-key /dev/zero: not a regular file"),
    ],
)
def test_a_refused_host_add_changes_nothing(
    fleet: Fleet, bs: Host, added, options: list[str], expected: str | None
) -> None:
    late = fleet.hosts.get("late") or tenant(fleet, "late")
    before = state(bs, late, "dup-late")
    argv = ["host", "add", "late", "--address", late.address, *options]
    if "--address" in options:
        argv = ["host", "add", "late", *options]
    done = bs.run(["dupctl", *argv], input="", check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    if expected:
        assert expected in done.stderr
    assert state(bs, late, "dup-late") == before


def test_a_host_add_that_fails_late_takes_back_what_it_made(fleet: Fleet, bs: Host, added) -> None:
    late = fleet.hosts.get("late") or tenant(fleet, "late")
    before = state(bs, late, "dup-late")
    nowhere = f"{SUBNET}.250"  # the host cannot reach the server there: the probe fails
    done = dupctl(bs, "host", "add", "late", "--address", late.address, "--server-address", nowhere)
    assert done.returncode == 7, done.stderr
    assert "late cannot reach sftp://dup-late@" in done.stderr
    assert "undone" in done.stdout
    assert state(bs, late, "dup-late") == before  # account, key, chroot, pin, host key, file
    assert "late" not in inventory(bs)["hosts"]


def test_host_remove_waits_for_no_run_of_the_host(fleet: Fleet, bs: Host, added) -> None:
    locks = bs.path("/var/lib/dupstack/locks")
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / "web2.lock", "a+") as lock:  # as a running backup of web2 holds it
        fcntl.flock(lock, fcntl.LOCK_EX)
        busy = dupctl(bs, "host", "remove", "web2")
    assert busy.returncode == 12, busy.stderr
    assert "web2: another dupctl run" in busy.stderr
    assert bs.run(["id", "dup-web2"], check=False).returncode == 0  # nothing removed
    assert "web2" in inventory(bs)["hosts"]

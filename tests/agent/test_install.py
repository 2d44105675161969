"""The server installs its agent at first boot from a package index, pinned by version and
sha256, and upgrades in place.

One fleet for the module: `bs` boots from the committed template's user-data (write_files,
then runcmd's installer) with a package index served on loopback inside its own network
namespace, which reaches no other index. The index holds the locked server set of this
machine (`make deps`) and two dupstack-agent releases built from this checkout: N (the
project's version) and N+1. The tests run in order, as a story.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.render import TEMPLATE
from scripts.dist import build_agent, project_version
from tests.agent.backup_fleet import DATA, snapshot, write_files
from tests.agent.backup_fleet import tenant as add_tenant
from tests.support import boot
from tests.support.backup_fleet import PASSCODE, SERVER_KEY, dupctl, ok
from tests.support.fleet import Fleet, Host

pytestmark = pytest.mark.root
N = project_version()
NEXT = f"{N}.post1"
INSTALLER = "/usr/local/sbin/dupstack-install"
TOKEN = "s3cr3t-index-token"


class ArgvSampler(threading.Thread):
    """Reads every process's command line, over and over, until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop, self.seen, self.samples = threading.Event(), set[str](), 0

    def run(self) -> None:
        while not self.stop.is_set():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    self.seen.add(
                        cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    )
                except OSError:
                    pass
            self.samples += 1

    def __enter__(self) -> ArgvSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join()


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with Fleet() as fleet:
        fleet.add_host("bs", volume=fleet.dir / "vdb.img").start_sshd()
        yield fleet


@pytest.fixture(scope="module")
def bs(fleet: Fleet) -> Host:
    return fleet.hosts["bs"]


@pytest.fixture(scope="module")
def releases(fleet: Fleet) -> dict[str, Path]:
    out = fleet.dir / "dist"
    return {version: build_agent(out, version) for version in (N, NEXT)}


@pytest.fixture(scope="module")
def index(
    fleet: Fleet, bs: Host, releases: dict[str, Path]
) -> Iterator[tuple[boot.PackageIndex, str]]:
    served = boot.PackageIndex(fleet.dir / "index")
    for wheel in releases.values():
        served.add(wheel)
    with served.serve(lambda argv: bs.keeper.nsenter(argv, mount=False)) as url:
        yield served, url


def boot_user_data(bs: Host, url: str, **values: str) -> None:
    """cloud-init's write_files of the template's user-data on `bs`, as Heat fills it."""
    config = boot.cloud_config(
        TEMPLATE, passcode=PASSCODE, volume_id="vol-1", package_index=url, **values
    )
    boot.write_files(config, bs.path("/"))
    assert config["runcmd"] == [
        ["sh", "-c", f"{INSTALLER} && exec /opt/dupstack/current/bin/dupctl init"]
    ]


def install(bs: Host) -> subprocess.CompletedProcess[str]:
    return bs.run([INSTALLER], check=False)


def test_a_wrong_agent_hash_stops_the_boot_before_anything_is_installed(
    bs: Host, index: tuple[boot.PackageIndex, str]
) -> None:
    _, url = index
    boot_user_data(bs, url, agent_version=N, agent_sha256="0" * 64)
    done = install(bs)
    assert done.returncode == 1
    line, hint = [line for line in done.stderr.splitlines() if "dupstack:" in line]
    assert line.startswith(f"dupstack: agent install failed: dupstack-agent {N} with sha256 000")
    assert (
        hint
        == f"dupstack: hint: nothing else changed; once fixed: sudo {INSTALLER} && sudo dupctl init"
    )
    assert not bs.path("/opt/dupstack/current").exists()
    assert list(bs.path("/opt/dupstack/releases").iterdir()) == []


def test_a_tampered_dependency_is_refused(
    bs: Host, index: tuple[boot.PackageIndex, str], releases: dict[str, Path]
) -> None:
    served, url = index
    boot_user_data(bs, url, agent_version=N, agent_sha256=boot.sha256(releases[N]))
    [wheel] = (served.root / "simple" / "rich").glob("*.whl")
    original = wheel.read_bytes()
    wheel.write_bytes(original + b"\0")
    try:
        done = install(bs)
    finally:
        wheel.write_bytes(original)
    assert done.returncode == 1
    [line] = [line for line in done.stderr.splitlines() if "install failed" in line]
    assert "a locked dependency is not to be had or its hash differs" in line
    assert "rich" in line.lower() or "hash" in line.lower()
    assert not bs.path("/opt/dupstack/current").exists()
    assert not bs.path("/mnt/vdb/.dupstack").exists()  # init never ran: the volume untouched


def test_the_boot_installs_the_pinned_release_and_inits(
    bs: Host, index: tuple[boot.PackageIndex, str], releases: dict[str, Path]
) -> None:
    _, url = index
    with_token = url.replace("http://", f"http://mirror:{TOKEN}@")  # http.server ignores it
    boot_user_data(bs, with_token, agent_version=N, agent_sha256=boot.sha256(releases[N]))
    assert bs.path("/etc/dupstack/install.env").stat().st_mode & 0o777 == 0o600
    with ArgvSampler() as argvs:
        done = install(bs)
    assert done.returncode == 0, done.stderr
    assert argvs.samples > 10 and not [argv for argv in argvs.seen if TOKEN in argv]
    assert f"dupstack: {N} installed in /opt/dupstack/releases/{N} and current" in done.stdout
    assert bs.path("/opt/dupstack/current").readlink() == Path(f"releases/{N}")
    assert ok(dupctl(bs, "--version")).strip() == f"dupctl {N}"
    installed = bs.run(["/opt/dupstack/current/bin/pip", "freeze"]).stdout
    assert "dupstack-agent @ file://" in installed or f"dupstack-agent=={N}" in installed
    assert "duplicity==3.2.1" in installed
    again = install(bs)  # the per-boot rerun: nothing to do
    assert again.stdout.strip() == f"dupstack: {N} is installed and current"
    init = ["dupctl", "init", "--mode", "create", "--device", str(bs.device), "--wait", "2"]
    ok(bs.run(init, check=False))
    assert "PATH=/opt/dupstack/current/bin:" in bs.path("/etc/cron.d/dupstack-hosts").read_text()


def test_an_upgrade_keeps_keys_inventory_and_backups(
    fleet: Fleet, bs: Host, index: tuple[boot.PackageIndex, str], releases: dict[str, Path]
) -> None:
    bs.run(["install", "-d", "-m", "0700", "/etc/duplicity/ssh"])
    bs.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dupstack@bs", "-f", SERVER_KEY])
    web1 = add_tenant(fleet, "web1")
    ok(dupctl(bs, "backup", "web1"))
    before, made = snapshot(web1), str(int(time.time()))
    time.sleep(1.1)  # duplicity's times have one-second resolution
    keys = bs.path("/etc/duplicity/dup_vars.sh").read_text()

    done = dupctl(bs, "upgrade", "--version", NEXT, "--sha256", boot.sha256(releases[NEXT]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"upgraded {N} -> {NEXT}" in done.stdout
    assert ok(dupctl(bs, "--version")).strip() == f"dupctl {NEXT}"
    assert sorted(p.name for p in bs.path("/opt/dupstack/releases").iterdir()) == [N, NEXT]
    assert f"DUPSTACK_VERSION={NEXT}\n" in bs.path("/etc/dupstack/install.env").read_text()
    assert TOKEN in bs.path("/etc/dupstack/install.env").read_text()  # the booted index kept
    assert bs.path("/etc/duplicity/dup_vars.sh").read_text() == keys
    assert [host["name"] for host in json.loads(ok(dupctl(bs, "host", "list", "--json")))] == [
        "web1"
    ]

    write_files(web1, 2, "after the upgrade", start=100)
    ok(dupctl(bs, "backup", "web1"))  # the pinned host key and the chain still work
    ok(dupctl(bs, "restore", "web1", "--path", DATA, "--time", made, "--to", "/tmp/old"))
    ok(dupctl(bs, "restore", "web1", "--path", DATA, "--to", "/tmp/new"))
    assert snapshot(bs, f"/tmp/old{DATA}") == before  # made by release N, restored by N+1
    assert snapshot(bs, f"/tmp/new{DATA}") == snapshot(web1)


def test_a_failed_upgrade_leaves_the_running_release(bs: Host) -> None:
    done = dupctl(bs, "upgrade", "--version", f"{N}.post2", "--sha256", "1" * 64)
    assert done.returncode == 7
    assert f"upgrade to {N}.post2 failed: dupstack: agent install failed:" in done.stderr
    assert f"hint: {NEXT} is still the running release" in done.stderr
    assert ok(dupctl(bs, "--version")).strip() == f"dupctl {NEXT}"
    assert not bs.path(f"/opt/dupstack/releases/{N}.post2").exists()
    assert json.loads(ok(dupctl(bs, "status", "web1", "--json")))[0]["error"] is None
    bad = dupctl(bs, "upgrade", "--version=1.0/../x", "--sha256", "1" * 64)
    assert bad.returncode == 2 and "--version '1.0/../x' is not a release version" in bad.stderr

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
import os
import signal
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet import HOST_ENV, Fleet, Host, boot
from fleet.backup import PASSCODE, SERVER_KEY, dupctl, ok
from provisioner.render import TEMPLATE
from scripts.dist import build_agent, project_version
from tests.agent.backup_fleet import DATA, snapshot, write_files
from tests.agent.backup_fleet import tenant as add_tenant

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
            for cmdline in (
                Path("/proc") / pid / "cmdline" for pid in os.listdir("/proc") if pid.isdigit()
            ):
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


def boot_user_data(bs: Host, url: str, **values: str) -> dict:
    """cloud-init's write_files of the template's user-data on `bs`, as Heat fills it."""
    config = boot.cloud_config(
        TEMPLATE, passcode=PASSCODE, volume_id="vol-1", package_index=url, **values
    )
    boot.write_files(config, bs.path("/"))
    assert config["runcmd"] == [
        ["sh", "-c", f"{INSTALLER} && exec /opt/dupstack/current/bin/dupctl init"]
    ]
    return config


def runcmd(bs: Host, config: dict) -> subprocess.CompletedProcess[str]:
    """cloud-init's runcmd line itself: the installer, then init only if it worked."""
    [argv] = config["runcmd"]
    return bs.run(argv, check=False)


def install(bs: Host) -> subprocess.CompletedProcess[str]:
    return bs.run([INSTALLER], check=False)


def current(bs: Host) -> str:
    """The release /opt/dupstack/current points at (VERSION-SHA12)."""
    return bs.path("/opt/dupstack/current").readlink().name


def name_of(version: str, wheel: Path) -> str:
    return f"{version}-{boot.sha256(wheel)[:12]}"


def test_a_wrong_agent_hash_stops_the_boot_before_anything_is_installed(
    bs: Host, index: tuple[boot.PackageIndex, str]
) -> None:
    _, url = index
    config = boot_user_data(bs, url, agent_version=N, agent_sha256="0" * 64)
    done = runcmd(bs, config)
    assert done.returncode == 1
    line, hint = [line for line in done.stderr.splitlines() if line.startswith("dupstack:")]
    assert line.startswith(f"dupstack: agent install failed: dupstack-agent {N} with sha256 000")
    assert hint == (
        f"dupstack: hint: nothing else changed; once fixed: sudo {INSTALLER} && sudo dupctl init"
    )
    assert "dupctl init" not in done.stdout  # init never ran
    assert not bs.path("/opt/dupstack/current").exists()
    assert list(bs.path("/opt/dupstack/releases").iterdir()) == []
    assert not list(bs.path("/opt/dupstack").glob(".install-*"))


def test_a_tampered_dependency_is_refused(
    bs: Host, index: tuple[boot.PackageIndex, str], releases: dict[str, Path]
) -> None:
    served, url = index
    config = boot_user_data(bs, url, agent_version=N, agent_sha256=boot.sha256(releases[N]))
    [wheel] = (served.root / "simple" / "rich").glob("*.whl")
    original = wheel.read_bytes()
    wheel.write_bytes(original + b"\0")
    try:
        done = runcmd(bs, config)
    finally:
        wheel.write_bytes(original)
    assert done.returncode == 1
    [line] = [line for line in done.stderr.splitlines() if "install failed" in line]
    assert "a locked dependency is not to be had or its hash differs" in line
    assert "DO NOT MATCH THE HASHES" in line  # pip's own refusal, not any failure
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
    assert TOKEN not in done.stdout + done.stderr
    name = name_of(N, releases[N])
    assert f"dupstack: {N} installed in /opt/dupstack/releases/{name} and current" in done.stdout
    assert current(bs) == name
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
    fleet: Fleet, bs: Host, releases: dict[str, Path]
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
    kept = sorted(p.name for p in bs.path("/opt/dupstack/releases").iterdir())
    assert kept == [name_of(N, releases[N]), name_of(NEXT, releases[NEXT])]
    recorded = bs.path("/etc/dupstack/install.env").read_text()
    assert f"DUPSTACK_VERSION={NEXT}\n" in recorded and TOKEN in recorded  # the index kept
    assert bs.path("/etc/dupstack/install.env").stat().st_mode & 0o777 == 0o600
    assert bs.path("/etc/duplicity/dup_vars.sh").read_text() == keys
    hosts = json.loads(ok(dupctl(bs, "host", "list", "--json")))
    assert [host["name"] for host in hosts] == ["web1"]

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
    assert len(list(bs.path("/opt/dupstack/releases").iterdir())) == 2
    assert f"DUPSTACK_VERSION={NEXT}\n" in bs.path("/etc/dupstack/install.env").read_text()
    assert json.loads(ok(dupctl(bs, "status", "web1", "--json")))[0]["error"] is None


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--version=1.0/../x", "--sha256", "1" * 64], "--version '1.0/../x' is not a release"),
        (["--version", "0.1", "--sha256", "1" * 64, "--index-url", f"https://u:{TOKEN}@m/simple"],
         "--index-url holds a credential or a signature"),
        (["--version", "0.1", "--sha256", "1" * 64, "--wheelhouse-sha256", "2" * 64,
          "--wheelhouse-url", f"https://swift/w.tar?temp_url_sig={TOKEN}"],
         "--wheelhouse-url holds a credential or a signature"),
    ],
)  # fmt: skip
def test_bad_upgrade_options_are_refused_without_echoing_a_secret(
    bs: Host, options: list[str], expected: str
) -> None:
    done = dupctl(bs, "upgrade", *options)
    assert done.returncode == 2 and expected in done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert ok(dupctl(bs, "--version")).strip() == f"dupctl {NEXT}"


def test_a_rollback_to_the_kept_release_needs_no_index(bs: Host, releases: dict[str, Path]) -> None:
    nowhere = ["--index-url", "http://127.0.0.1:9/simple"]  # nothing listens: fetching fails
    done = dupctl(bs, "upgrade", "--version", N, "--sha256", boot.sha256(releases[N]), *nowhere)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{N} (installed before) is current again" in done.stdout
    assert current(bs) == name_of(N, releases[N])
    assert ok(dupctl(bs, "--version")).strip() == f"dupctl {N}"
    kept = sorted(p.name for p in bs.path("/opt/dupstack/releases").iterdir())
    assert kept == [name_of(N, releases[N]), name_of(NEXT, releases[NEXT])]  # N+1 kept now
    ok(dupctl(bs, "status", "web1"))


def test_an_interrupted_upgrade_changes_nothing(
    bs: Host, index: tuple[boot.PackageIndex, str], releases: dict[str, Path]
) -> None:
    _, url = index
    other = NEXT.replace("post1", "post3")
    wheel = index[0].add(build_agent(bs.fleet.dir / "dist3", other))
    argv = ["dupctl", "upgrade", "--version", other, "--sha256", boot.sha256(wheel),
            "--index-url", url]  # fmt: skip
    upgrade = subprocess.Popen(bs.keeper.nsenter(argv), env=HOST_ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(bs.path("/opt/dupstack/releases").glob(f"{other}-*/bin/pip")):
        assert time.monotonic() < deadline and upgrade.poll() is None, upgrade.communicate()
        time.sleep(0.05)
    time.sleep(0.5)  # into pip's work
    upgrade.send_signal(signal.SIGINT)
    upgrade.communicate(timeout=120)
    assert upgrade.returncode == 130
    assert current(bs) == name_of(N, releases[N])
    assert ok(dupctl(bs, "--version")).strip() == f"dupctl {N}"
    assert not list(bs.path("/opt/dupstack").glob(".install-*"))
    assert not list(bs.path("/opt/dupstack/releases").glob(f"{other}-*"))
    assert f"DUPSTACK_VERSION={N}\n" in bs.path("/etc/dupstack/install.env").read_text()


def test_a_server_installs_from_a_wheelhouse_alone(fleet: Fleet, releases: dict[str, Path]) -> None:
    """A cloud without internet: one .tar, checked by its sha256, and no index at all."""
    offline = fleet.add_host("offline")
    tar = fleet.dir / "wheelhouse.tar"
    with tarfile.open(tar, "w") as archive:
        for wheel in [*boot.WHEELHOUSE.glob("*.whl"), releases[N]]:
            archive.add(wheel, arcname=wheel.name)
    served = fleet.dir / "swift"
    served.mkdir()
    tar.rename(served / "w.tar")
    tar = served / "w.tar"
    wheelhouse = {"wheelhouse_url": f"http://127.0.0.1:{boot.PORT}/w.tar?temp_url_sig={TOKEN}",
                  "wheelhouse_sha256": boot.sha256(tar)}  # fmt: skip
    config = boot.cloud_config(
        TEMPLATE, passcode=PASSCODE, volume_id="vol-1", agent_version=N,
        agent_sha256=boot.sha256(releases[N]), package_index="http://127.0.0.1:1/simple",
        **wheelhouse,
    )  # fmt: skip
    boot.write_files(config, offline.path("/"))
    with boot.serve_folder(served, lambda argv: offline.keeper.nsenter(argv, mount=False)):
        with ArgvSampler() as argvs:
            done = offline.run([INSTALLER], check=False)
        assert done.returncode == 0, done.stderr
        assert not [argv for argv in argvs.seen if TOKEN in argv]
        assert (
            offline.run(["/opt/dupstack/current/bin/dupctl", "--version"]).stdout == f"dupctl {N}\n"
        )
        tar.write_bytes(tar.read_bytes() + b"\0")  # a tampered wheelhouse, another release
        env = {"DUPSTACK_VERSION": NEXT, "DUPSTACK_SHA256": boot.sha256(releases[NEXT])}
        refused = offline.run(
            ["env", *(f"{k}={v}" for k, v in env.items()), INSTALLER], check=False
        )
    assert refused.returncode == 1
    assert "the wheelhouse does not have sha256" in refused.stderr
    assert offline.path("/opt/dupstack/current").readlink().name == name_of(N, releases[N])

"""The test fleet: isolated hosts with real sshd, and nothing left behind afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleet import CHECKOUT, Fleet, Host

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]


def connect(host: Host, target: Host, timeout: float = 2.0) -> bytes:
    """The first bytes `target`'s port 22 sends to `host`."""

    def banner() -> bytes:
        with socket.create_connection((target.address, 22), timeout=timeout) as sock:
            return sock.recv(8)

    return host.call(banner)


def leftovers(pids: list[int], nets: list[str], loops: list[Path], folder: Path) -> list[str]:
    """What is left of a closed fleet: processes, namespaces, loop devices, files."""
    alive = [f"pid {pid}" for pid in pids if Path(f"/proc/{pid}").exists()]
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "ns" / "net") in nets:
                alive.append(f"pid {entry.name} in a fleet namespace")
        except OSError:
            pass
    attached = [str(loop) for loop in loops if Path(f"/sys/block/{loop.name}/loop").exists()]
    return alive + attached + ([str(folder)] if folder.exists() else [])


def test_three_hosts_with_sshd_come_up_fast_and_reach_each_other() -> None:
    started = time.monotonic()
    with Fleet() as fleet:
        bs = fleet.add_host("bs", volume=fleet.dir / "vdb.img")
        web1, web2 = fleet.add_host("web1"), fleet.add_host("web2")
        for host in (bs, web1, web2):
            host.start_sshd()
        assert time.monotonic() - started < 3
        assert connect(web1, bs).startswith(b"SSH-2.0")
        assert connect(bs, web2).startswith(b"SSH-2.0")
        # Each host has its own host key.
        assert len({host.host_key_pub for host in (bs, web1, web2)}) == 3
        assert "duplicity 3." in web1.run(["duplicity", "--version"]).stdout
        assert bs.run(["dupctl", "--help"]).returncode == 0
        assert web1.run(["which", "dupctl"], check=False).returncode != 0
        assert web1.run(["findmnt", "/mnt/vdb"], check=False).returncode != 0
        assert "ext4" in bs.run(["findmnt", "-n", "-o", "FSTYPE", "/mnt/vdb"]).stdout


def test_a_host_changes_only_itself() -> None:
    real_passwd = Path("/etc/passwd").read_text()
    with Fleet() as fleet:
        one, two = fleet.add_host("one"), fleet.add_host("two")
        one.run(["useradd", "--system", "fleet-probe"])
        one.run(["sh", "-c", "echo changed > /etc/fleet-probe && echo x > /var/lib/fleet-probe"])
        assert one.run(["id", "fleet-probe"]).returncode == 0
        assert two.run(["id", "fleet-probe"], check=False).returncode != 0
        assert two.run(["cat", "/etc/fleet-probe"], check=False).returncode != 0
        assert not Path("/etc/fleet-probe").exists()
        assert not Path("/var/lib/fleet-probe").exists()
        assert Path("/etc/passwd").read_text() == real_passwd
        for private in ("/tmp", "/run", "/mnt"):
            assert one.run(["findmnt", "-n", "-o", "FSTYPE", private]).stdout.strip() == "tmpfs"
        # The fleet's addresses exist only inside its namespaces.
        assert "10.77." not in subprocess.run(["ip", "addr"], capture_output=True).stdout.decode()
        assert "10.77." in one.run(["ip", "addr"]).stdout


def test_a_stopped_host_refuses_and_a_down_host_is_silent() -> None:
    with Fleet() as fleet:
        client, server = fleet.add_host("client"), fleet.add_host("server")
        server.start_sshd()
        server.stop()
        with pytest.raises(ConnectionRefusedError):
            connect(client, server)
        server.start_sshd()
        server.down()
        with pytest.raises(OSError):  # no answer at all: timeout or no route
            connect(client, server, timeout=1)
        server.up()
        assert connect(client, server).startswith(b"SSH-2.0")


@pytest.mark.parametrize("fails", [False, True], ids=["clean-exit", "failed-test"])
def test_close_leaves_nothing_behind(fails: bool) -> None:
    seen: dict[str, list] = {}
    with pytest.raises(RuntimeError) if fails else contextlib.nullcontext():
        with Fleet() as fleet:
            bs = fleet.add_host("bs", volume=fleet.dir / "vdb.img")
            web = fleet.add_host("web")
            for host in (bs, web):
                host.start_sshd()
            # A session left open inside a host is killed too.
            web.run(["sh", "-c", "sleep 300 >/dev/null 2>&1 &"])
            seen = {
                "pids": [fleet.switch.pid, *(h.keeper.pid for h in (bs, web))]
                + [h.sshd.pid for h in (bs, web) if h.sshd],
                "nets": [fleet.switch.net, bs.keeper.net, web.keeper.net],
                "loops": list(fleet.loops),
                "folder": [fleet.dir],
            }
            if fails:
                raise RuntimeError("the test failed")
    assert leftovers(seen["pids"], seen["nets"], seen["loops"], seen["folder"][0]) == []


KILLED_RUN = """
import json, os, signal
from pathlib import Path
from fleet import Fleet
fleet = Fleet()
bs = fleet.add_host("bs", volume=fleet.dir / "vdb.img")
bs.start_sshd()
print(json.dumps({
    "pids": [fleet.switch.pid, bs.keeper.pid, bs.sshd.pid],
    "nets": [fleet.switch.net, bs.keeper.net],
    "loops": [str(loop) for loop in fleet.loops],
    "folder": str(fleet.dir),
}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_test_run_leaves_only_its_folder() -> None:
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN], capture_output=True, text=True, cwd=ROOT
    )
    assert killed.returncode == -9, killed.stderr
    seen = json.loads(killed.stdout)
    folder = Path(seen["folder"])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (
            left := leftovers(seen["pids"], seen["nets"], [Path(p) for p in seen["loops"]], folder)
        ) != [str(folder)]:
            time.sleep(0.05)
        assert left == [str(folder)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_hosts_see_the_checkout_and_its_tools_wherever_it_lives() -> None:
    """The checkout stays visible in every host (a clone under /tmp is covered by its tmpfs)."""
    with Fleet() as fleet:
        bs = fleet.add_host("bs", volume=fleet.dir / "vdb.img")
        web = fleet.add_host("web")
        marker = f"{CHECKOUT}/pyproject.toml"
        assert bs.run(["test", "-f", marker], check=False).returncode == 0
        assert web.run(["duplicity", "--version"]).stdout.startswith("duplicity 3.")
        assert bs.run(["dupctl", "--help"]).stdout.startswith("usage: dupctl")

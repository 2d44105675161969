"""A fleet of throwaway hosts on one machine: namespaces, a bridge, real sshd, a loop volume.

    with Fleet() as fleet:
        bs = fleet.add_host("bs", volume=fleet.dir / "vdb.img")   # the backup server
        web = fleet.add_host("web1")
        web.start_sshd()
        web.run(["hostname"])

Each host is a network namespace with a veth into a bridge that lives in a "switch" network
namespace (addresses 10.77.0.0/24 exist only there), plus a private mount namespace in which
/etc, /root, /home, /var, /opt and /usr/local are overlays (writes land in the fleet's folder)
and /run, /tmp, /mnt are tmpfs: `useradd`, sshd settings and keys change inside a host only.
A keeper process (`sleep`) holds both namespaces; a host dies with it. Keepers and sshd get
PDEATHSIG and the loop device is autoclear, so a killed test run leaves neither them nor the
namespaces behind (only its folder, and what it started in the background inside a host).
`close()` kills every process inside every host by PID, waits for the loop devices to go and
removes the folder.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

CHECKOUT = Path(__file__).resolve().parents[1]
VENV_BIN = CHECKOUT / ".venv" / "bin"
SUBNET = "10.77.0"
OVERLAID = ("/etc", "/root", "/home", "/var", "/opt", "/usr/local")
TMPFS = (("/run", "0755"), ("/tmp", "1777"), ("/mnt", "0755"))
# A host's root has Debian's own dotfiles, not this machine's: a developer's ~/.bashrc (pyenv
# init, say) would run before every command sshd starts, ~0.1 s each, and put its python3 first.
STOCK_ROOT_DOTFILES = (".bashrc", ".profile")
# Where the checkout waits while a tmpfs covers its place (a clone under /tmp, as CI may use).
CHECKOUT_STAGE = "/usr/local/lib/dupstack-checkout"
HOST_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}
SSHD_CONFIG = """\
Include /etc/ssh/sshd_config.d/*.conf
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile /run/sshd.pid
Subsystem sftp internal-sftp
"""
# Children get SIGKILL when the test process dies (pdeathsig survives exec).
DIE_WITH_PARENT = ("setpriv", "--pdeathsig", "KILL", "--")
CLONE_NEWNET = 0x40000000
LIBC = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


def _sh(*commands: Sequence[str]) -> str:
    return " && ".join(shlex.join(command) for command in commands)


def _run(argv: Sequence[str], input: str | None = None) -> str:
    done = subprocess.run(argv, input=input, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _net_inode(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def _pids_in_netns(inode: str) -> list[int]:
    """Every process whose network namespace is `inode` (a host's keeper, sshd, sessions...)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/net") == inode:
                    pids.append(int(entry))
            except OSError:  # gone meanwhile, or a kernel thread
                pass
    return pids


def _kill_all(pids: Sequence[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Keeper:
    """A `sleep` holding new namespaces; `setup` runs inside them first (it must not fail)."""

    def __init__(self, unshare: Sequence[str], setup: str = "true") -> None:
        self.process = subprocess.Popen(
            [
                *DIE_WITH_PARENT,
                "unshare",
                *unshare,
                "--",
                "sh",
                "-c",
                f"{setup} && echo ready && exec sleep infinity",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline() != "ready\n":
            _, errors = self.process.communicate()
            raise RuntimeError(f"namespace setup failed: {errors.strip()}")
        self.pid = self.process.pid
        self.net = _net_inode(self.pid)

    def nsenter(self, argv: Sequence[str], mount: bool = True) -> list[str]:
        return ["nsenter", "-t", str(self.pid), *(["-m"] if mount else []), "-n", "--", *argv]

    def kill(self) -> None:
        """Kill every process in these namespaces (the keeper last), and reap the keeper."""
        if self.process.poll() is None:
            _kill_all([pid for pid in _pids_in_netns(self.net) if pid != self.pid])
            self.process.kill()
        self.process.communicate()


class Host:
    """One machine of the fleet; see the module docstring."""

    def __init__(
        self, fleet: Fleet, name: str, index: int, device: Path | None, duplicity: bool
    ) -> None:
        self.fleet = fleet
        self.name = name
        self.address = f"{SUBNET}.{index + 10}"
        self.device = device
        self.duplicity = duplicity
        self.sshd: subprocess.Popen[str] | None = None
        self.keeper = Keeper(
            ["--mount", "--net", "--propagation", "private"],
            self._mount_script(fleet.dir / name),
        )
        self.port = f"p{index}"  # the switch's side of this host's cable

    def plug(self) -> None:
        """Cable the host into the switch and give it its address."""
        switch = self.fleet.switch
        _run(switch.nsenter(["ip", "link", "add", self.port, "type", "veth", "peer", "name",
                             "eth0", "netns", str(self.keeper.pid)], mount=False))  # fmt: skip
        _run(switch.nsenter(["ip", "link", "set", self.port, "master", "br0", "up"], mount=False))
        self.run(["ip", "link", "set", "lo", "up"])
        self.run(["ip", "addr", "add", f"{self.address}/24", "dev", "eth0"])
        self.up()

    def _mount_script(self, state: Path) -> str:
        commands: list[list[str]] = []
        for top in OVERLAID:
            upper, work = state / top.strip("/") / "upper", state / top.strip("/") / "work"
            upper.mkdir(parents=True)
            work.mkdir()
            options = f"lowerdir={top},upperdir={upper},workdir={work}"
            commands.append(["mount", "-t", "overlay", "overlay", "-o", options, top])
        for dotfile in STOCK_ROOT_DOTFILES:  # bash runs .bashrc for each command sshd starts
            commands.append(["cp", f"/usr/share/base-files/dot{dotfile}", f"/root/{dotfile}"])
        covered = any(CHECKOUT.is_relative_to(top) for top, _ in TMPFS)
        if covered:  # keep the checkout (and its .venv) visible inside the host
            commands.append(["mkdir", "-p", CHECKOUT_STAGE])
            commands.append(["mount", "--bind", str(CHECKOUT), CHECKOUT_STAGE])
        for top, mode in TMPFS:
            commands.append(["mount", "-t", "tmpfs", "-o", f"mode={mode}", "tmpfs", top])
        if covered:
            commands.append(["mkdir", "-p", str(CHECKOUT)])
            commands.append(["mount", "--move", CHECKOUT_STAGE, str(CHECKOUT)])
        if self.duplicity:
            link = ["ln", "-sfn", str(VENV_BIN / "duplicity"), "/usr/local/bin/duplicity"]
            commands.append(link)
        if self.device is not None:
            commands.append(["mkdir", "/mnt/vdb"])
            commands.append(["mount", str(self.device), "/mnt/vdb"])
            commands.append(["ln", "-sfn", str(VENV_BIN / "dupctl"), "/usr/local/sbin/dupctl"])
        return _sh(*commands)

    def run(
        self, argv: Sequence[str], input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the host (as its root, with a plain root environment)."""
        done = subprocess.run(
            self.keeper.nsenter(argv),
            input=input,
            capture_output=True,
            text=True,
            check=False,
            env=HOST_ENV,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{self.name}: {shlex.join(argv)} exited {done.returncode}: {done.stderr.strip()}"
            )
        return done

    def call(self, function: Callable[[], T]) -> T:
        """`function()` in a thread inside the host's network namespace (only: it sees this
        machine's files), e.g. to use a client library against the fleet."""
        outcome: dict[str, Any] = {}

        def inside() -> None:
            fd = os.open(f"/proc/{self.keeper.pid}/ns/net", os.O_RDONLY)
            try:
                if LIBC.setns(fd, CLONE_NEWNET) != 0:  # only this thread moves
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            try:
                outcome["value"] = function()
            except BaseException as error:  # re-raised in the caller's thread
                outcome["error"] = error

        thread = threading.Thread(target=inside, name=f"in-{self.name}")
        thread.start()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def path(self, path: str | Path) -> Path:
        """`path` inside the host, seen from outside (through the keeper's root)."""
        return Path(f"/proc/{self.keeper.pid}/root") / str(path).lstrip("/")

    def start_sshd(self) -> None:
        """A real sshd on port 22 with a fresh host key; root may log in by key only.

        Again: a restart with a new host key (as a rebuilt host would have)."""
        self.stop()
        keys = self.path("/etc/ssh")
        for old in keys.glob("ssh_host_*"):
            old.unlink()
        self.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{self.name}",
                  "-f", "/etc/ssh/ssh_host_ed25519_key"])  # fmt: skip
        (keys / "sshd_config").write_text(SSHD_CONFIG)
        self.path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.run(["sshd", "-t"])
        pid_file = self.path("/run/sshd.pid")
        pid_file.unlink(missing_ok=True)
        log = (self.fleet.dir / f"{self.name}.sshd.log").open("a")
        self.sshd = subprocess.Popen(
            [*DIE_WITH_PARENT, *self.keeper.nsenter(["/usr/sbin/sshd", "-D", "-e"])],
            stdout=log,
            stderr=log,
            env=HOST_ENV,
            text=True,
        )
        log.close()
        deadline = time.monotonic() + 5
        while not pid_file.exists():  # written once sshd listens
            if self.sshd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: sshd did not start: see {log.name}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop sshd (connections are refused; the host still answers on the network)."""
        if self.sshd is not None:
            self.sshd.kill()
            self.sshd.wait()
            self.sshd = None

    def down(self) -> None:
        """Pull the host's cable: nothing reaches it any more (connections time out)."""
        self.run(["ip", "link", "set", "eth0", "down"])

    def up(self) -> None:
        self.run(["ip", "link", "set", "eth0", "up"])

    @property
    def host_key_pub(self) -> str:
        """The host's SSH host key, as an OpenSSH public key line."""
        return self.path("/etc/ssh/ssh_host_ed25519_key.pub").read_text().strip()

    def authorize(self, pubkey: str) -> None:
        """Let the owner of `pubkey` log in as root."""
        ssh = self.path("/root/.ssh")
        ssh.mkdir(mode=0o700, exist_ok=True)
        keys = ssh / "authorized_keys"
        with keys.open("a") as handle:
            handle.write(pubkey.strip() + "\n")
        keys.chmod(0o600)

    def kill(self) -> None:
        self.stop()
        self.keeper.kill()


class Fleet:
    """A context manager: an isolated network of hosts, all gone after `close()`."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fleet-", dir="/tmp"))
        self.hosts: dict[str, Host] = {}
        self.loops: list[Path] = []
        try:
            self.switch = Keeper(["--net"], _sh(["ip", "link", "add", "br0", "type", "bridge"],
                                                ["ip", "link", "set", "br0", "up"]))  # fmt: skip
        except BaseException:
            shutil.rmtree(self.dir)
            raise

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def add_host(self, name: str, volume: Path | None = None, duplicity: bool = True) -> Host:
        """A new host, with duplicity 3 on its PATH unless `duplicity` is False.

        With `volume` (an image file, made and formatted if missing) mounted at /mnt/vdb
        through a loop device, and `dupctl` on its PATH, it is a backup server."""
        device = None
        if volume is not None:
            if not volume.exists():
                _run(["truncate", "-s", "256M", str(volume)])
                _run(["mkfs.ext4", "-q", "-L", "dupstack", "-m", "0", str(volume)])
            device = Path(_run(["losetup", "--find", "--show", str(volume)]).strip())
            self.loops.append(device)
        host = self.hosts[name] = Host(self, name, len(self.hosts), device, duplicity)
        if device is not None:
            # Detaching a mounted loop device marks it autoclear: it goes with the mount,
            # when the host's mount namespace dies, even if this process is killed.
            _run(["losetup", "-d", str(device)])
        host.plug()
        return host

    def close(self) -> None:
        """Kill every process of every host by PID, drop namespaces and loops, remove files."""
        for host in self.hosts.values():
            host.kill()
        self.switch.kill()
        deadline = time.monotonic() + 5
        for device in self.loops:
            subprocess.run(["losetup", "-d", str(device)], capture_output=True, check=False)
            while Path(f"/sys/block/{device.name}/loop").exists() and time.monotonic() < deadline:
                time.sleep(0.01)  # the kernel lets go of it once the namespace is gone
        shutil.rmtree(self.dir, ignore_errors=True)

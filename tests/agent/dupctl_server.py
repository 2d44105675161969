"""A local backup "server" for dupctl: private mount + network namespaces and a loop volume.

The server's files live under a root folder (`dupctl --root`), so the real /etc, /mnt and
/etc/fstab are never touched; mounts happen only inside the server's mount namespace and
firewall rules only inside its network namespace. Everything is torn down after each test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
DUPCTL = str(VENV_BIN / "dupctl")
# The server's PATH: the agent's venv first (duplicity, dupctl), as in /opt/dupstack/bin.
SERVER_ENV = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
PASSCODE = "correct horse battery staple #1: 'quoted'"
WAIT = "2"


class LoopVolume:
    """A file-backed loop device standing in for the Cinder volume."""

    def __init__(self, image: Path, size: str = "64M") -> None:
        subprocess.run(["truncate", "-s", size, str(image)], check=True)
        self.image = image
        self.device = Path(
            subprocess.run(
                ["losetup", "--find", "--show", str(image)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )

    def blkid(self) -> dict[str, str]:
        done = subprocess.run(
            ["blkid", "-p", "-o", "export", str(self.device)], capture_output=True, text=True
        )
        return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)

    def detach(self) -> None:
        subprocess.run(["losetup", "-d", str(self.device)], check=False)


class Server:
    """A backup server: a root folder, plus a process holding its mount and network namespaces.

    `reboot()` drops every mount (a new namespace) and keeps the files, as a reboot would.
    """

    def __init__(self, root: Path, volume: LoopVolume) -> None:
        self.root = root
        self.volume = volume
        self.holder: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        self.boot()

    def boot(self) -> None:
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--net", "--propagation", "private", "sleep", "infinity"]
        )
        # The holder is ready once its mount namespace differs from ours.
        while os.readlink(f"/proc/{self.holder.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt"):
            pass

    def shutdown(self) -> None:
        if self.holder is None:
            return
        self.run(["gpgconf", "--homedir", str(self.etc / "gnupg"), "--kill", "gpg-agent"])
        self.holder.send_signal(signal.SIGKILL)
        self.holder.wait()
        self.holder = None

    def reboot(self) -> None:
        self.shutdown()
        self.boot()

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside the server's namespaces."""
        assert self.holder is not None
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-n", "--", *argv]

    def run(self, argv: Sequence[str], input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(argv),
            input=input,
            capture_output=True,
            text=True,
            check=False,
            env=self.env,
        )

    @property
    def env(self) -> dict[str, str]:
        """The server's PATH, and a HOME of its own (duplicity keeps its cache there)."""
        home = self.root / "root"
        home.mkdir(exist_ok=True)
        return {**SERVER_ENV, "HOME": str(home)}

    def init_argv(self, *args: str) -> list[str]:
        return [
            DUPCTL, "--root", str(self.root), "init",
            "--device", str(self.volume.device), "--wait", WAIT, *args,
        ]  # fmt: skip

    def init(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return self.run(self.init_argv(*args), input=input)

    def write_passcode(self, passcode: str = PASSCODE) -> Path:
        """What cloud-init's write_files does: the passcode, root-only, in /run/dupstack."""
        path = self.root / "run" / "dupstack" / "passcode"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(passcode)
        return path

    def path(self, path: Path | str) -> Path:
        """`path` as seen inside the server (where the volume is mounted)."""
        assert self.holder is not None
        return Path(f"/proc/{self.holder.pid}/root") / str(path).lstrip("/")

    @property
    def etc(self) -> Path:
        return self.root / "etc" / "duplicity"

    @property
    def mount_point(self) -> Path:
        return self.root / "mnt" / "vdb"

    @property
    def volume_dir(self) -> Path:
        return self.path(self.mount_point)

    def fingerprint(self) -> str:
        for line in (self.etc / "dup_vars.sh").read_text().splitlines():
            if line.startswith("export ENCRYPT_KEY="):
                return line.split("=", 1)[1]
        raise AssertionError("no ENCRYPT_KEY in dup_vars.sh")

    def is_mounted(self) -> bool:
        return self.run(["mountpoint", "-q", str(self.mount_point)]).returncode == 0

"""A throwaway sshd on 127.0.0.1 for SFTP cases: own host key, own client key, stopped by PID.

Server side as on the backup server (`ForceCommand internal-sftp`), without the chroot
(ChrootDirectory needs root-owned parents, which a temp dir under /tmp is not).
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


class SshdError(RuntimeError):
    """sshd could not be started."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(8).startswith(b"SSH-")
    except OSError:
        return False


class LoopbackSshd:
    """sshd listening on 127.0.0.1:`port`, accepting `user` with the key at `identity`."""

    def __init__(self, workdir: Path, user: str = "root") -> None:
        self.dir = workdir
        self.user = user
        self.port = 0
        self.identity = workdir / "id_ed25519"
        self.known_hosts = workdir / "known_hosts"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """PID of the listening sshd."""
        assert self._proc is not None, "sshd not started"
        return self._proc.pid

    def ssh_options(self) -> str:
        """Options for duplicity's --ssh-options (paramiko honours these two)."""
        return f"-oUserKnownHostsFile={self.known_hosts} -oIdentityFile={self.identity}"

    def url(self, path: Path) -> str:
        """duplicity sftp:// URL for an absolute `path` on this server."""
        return f"sftp://{self.user}@127.0.0.1:{self.port}/{path}"

    def start(self) -> None:
        """Make keys and config, start sshd, wait for its banner (three tries for a port)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        host_key = self.dir / "ssh_host_ed25519_key"
        for key in (host_key, self.identity):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", str(key)],
                check=True,
                stdin=subprocess.DEVNULL,
            )
        authorized = self.dir / "authorized_keys"
        authorized.write_bytes(self.identity.with_suffix(".pub").read_bytes())
        # sshd's privilege-separation directory; Debian's package creates it only at boot.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for _ in range(3):
            self.port = _free_port()
            self.known_hosts.write_text(
                f"[127.0.0.1]:{self.port} "
                + " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
                + "\n"
            )
            config = self.dir / "sshd_config"
            config.write_text(
                f"Port {self.port}\n"
                "ListenAddress 127.0.0.1\n"
                f"HostKey {host_key}\n"
                f"PidFile {self.dir / 'sshd.pid'}\n"
                f"AuthorizedKeysFile {authorized}\n"
                f"AllowUsers {self.user}\n"
                "PermitRootLogin prohibit-password\n"
                "PasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\n"
                "UsePAM no\n"
                "StrictModes no\n"
                "Subsystem sftp internal-sftp\n"
                "ForceCommand internal-sftp\n"
                "AllowTcpForwarding no\n"
                "X11Forwarding no\n"
                "PermitTTY no\n"
            )
            with open(self.dir / "sshd.log", "ab") as log:
                self._proc = subprocess.Popen(
                    [SSHD, "-D", "-e", "-f", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self._proc.poll() is None:
                if _banner(self.port):
                    return
                time.sleep(0.05)
            self.stop()
        raise SshdError(f"sshd did not start; see {self.dir / 'sshd.log'}")

    def stop(self) -> None:
        """Stop sshd (by its PID) and its remaining session processes."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc)

    def __enter__(self) -> LoopbackSshd:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """A daemon the bench started, stopped by its PID: SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

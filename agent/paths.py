"""Where dupctl reads and writes on the server; every path moves under a test root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def _under(root: Path, absolute: str) -> Path:
    return root / absolute.lstrip("/")


@dataclass(frozen=True)
class ServerPaths:
    """The server's files; `from_root` prefixes them all (for tests and the demo)."""

    etc_dir: Path  # keys, passphrase, dup_vars.sh (the old stack's /etc/duplicity)
    mount_point: Path
    fstab: Path
    cron_dir: Path
    stack_env: Path  # written by cloud-init: volume id, mode, ssh user
    passcode_file: Path  # written by cloud-init, consumed by `init`
    metadata_lock: Path  # nftables rules that bootcmd re-applies at every boot
    sshd_dir: Path  # sshd's settings and host keys; host add writes a drop-in
    sshd_pid_file: Path  # host add reloads a running sshd (SIGHUP)
    state_dir: Path  # locks, the last run of each host, the inventory the schema passed
    log_dir: Path  # one log file per run and host
    cache_dir: Path  # duplicity's archive dir for the server-side commands
    root: Path = Path("/")

    @classmethod
    def from_root(cls, root: Path = Path("/")) -> ServerPaths:
        return cls(
            etc_dir=_under(root, "/etc/duplicity"),
            mount_point=_under(root, "/mnt/vdb"),
            fstab=_under(root, "/etc/fstab"),
            cron_dir=_under(root, "/etc/cron.d"),
            stack_env=_under(root, "/etc/dupstack/stack.env"),
            passcode_file=_under(root, "/run/dupstack/passcode"),
            metadata_lock=_under(root, "/etc/dupstack/metadata-lock.nft"),
            sshd_dir=_under(root, "/etc/ssh"),
            sshd_pid_file=_under(root, "/run/sshd.pid"),
            state_dir=_under(root, "/var/lib/dupstack"),
            log_dir=_under(root, "/var/log/dupstack"),
            cache_dir=_under(root, "/var/cache/dupstack"),
            root=root,
        )

    def under(self, absolute: str) -> Path:
        """A path the inventory names (absolute on the server), under the same root."""
        return _under(self.root, absolute)

    @property
    def install_env(self) -> Path:
        """Where the agent comes from (written by cloud-init, read by dupstack-install)."""
        return self.stack_env.with_name("install.env")

    @property
    def gnupg_home(self) -> Path:
        return self.etc_dir / "gnupg"

    @property
    def passphrase_file(self) -> Path:
        return self.etc_dir / "passphrase"

    @property
    def config_file(self) -> Path:
        """The inventory: hosts to back up and their settings (agent/config/schema.json)."""
        return self.etc_dir / "dupstack.yaml"

    @property
    def dup_vars(self) -> Path:
        return self.etc_dir / "dup_vars.sh"

    @property
    def volume_state_dir(self) -> Path:
        """dupstack's own folder on the volume: key escrow and its README."""
        return self.mount_point / ".dupstack"

    @property
    def hosts_dir(self) -> Path:
        """On the volume: one sftp chroot per tenant host (`dup-NAME/backups`)."""
        return self.mount_point / "hosts"

    @property
    def sftp_keys_dir(self) -> Path:
        """Each host's SFTP key, read by sshd as that host's account (so not in etc_dir)."""
        return self.sshd_dir / "dupstack" / "authorized_keys"

    @property
    def sshd_dropin(self) -> Path:
        return self.sshd_dir / "sshd_config.d" / "dupstack.conf"

    @property
    def cron_file(self) -> Path:
        """The server's own /etc backup, written once by init (the operator may edit it)."""
        return self.cron_dir / "dupstack"

    @property
    def hosts_cron_file(self) -> Path:
        """The tenant hosts' schedule, rendered from the inventory (agent/schedule)."""
        return self.cron_dir / "dupstack-hosts"

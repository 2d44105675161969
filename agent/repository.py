"""Where each tenant host's backup sets live, as seen from the backup server and from the host.

Both views name the same sets (docs/backups-design.md): the host pushes over SFTP into its
chroot on the volume; the server reads the same folder as a local file:// repository (list,
restore, prune, status), so it never needs the host to be up.
"""

from __future__ import annotations

from pathlib import Path

from agent.config.load import HostConfig, Inventory
from agent.duplicity.common import Repository, backup_name, file_url, sftp_url
from agent.paths import ServerPaths

TENANT_SSH_DIR = "/root/.ssh"
TENANT_KEY = f"{TENANT_SSH_DIR}/dupstack_ed25519"
TENANT_KNOWN_HOSTS = f"{TENANT_SSH_DIR}/dupstack_known_hosts"
TENANT_ARCHIVE_DIR = "/var/cache/dupstack"  # duplicity's local cache on the tenant host
BACKUPS = "backups"  # inside the chroot; the SFTP path is /backups


def chroot_dir(paths: ServerPaths, host: HostConfig) -> Path:
    """The host's SFTP chroot on the volume (root-owned)."""
    return paths.hosts_dir / host.sftp_user


def backups_dir(paths: ServerPaths, host: HostConfig) -> Path:
    """The folder holding the host's duplicity sets on the volume."""
    return chroot_dir(paths, host) / BACKUPS


def server_repository(paths: ServerPaths, host: HostConfig) -> Repository:
    """The host's sets as a local repository on the backup server."""
    return Repository(
        url=file_url(str(backups_dir(paths, host))),
        name=backup_name(host.name),
        archive_dir=str(paths.cache_dir),
    )


def tenant_repository(inventory: Inventory, host: HostConfig) -> Repository:
    """The host's sets as its own duplicity reaches them: SFTP into its chroot."""
    return Repository(
        url=sftp_url(
            host.sftp_user, inventory.server_address, inventory.server_port, f"/{BACKUPS}"
        ),
        name=backup_name(host.name),
        archive_dir=TENANT_ARCHIVE_DIR,
        identity_file=TENANT_KEY,
        known_hosts_file=TENANT_KNOWN_HOSTS,
    )

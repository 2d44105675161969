"""What `host add` does on the tenant host: duplicity >= 3 there (installed in a venv if
asked), its SFTP key pair, this server's pinned host key, and a probe into its chroot."""

from __future__ import annotations

import re

from agent import remote
from agent.errors import HostNotReady, RemoteCommandFailed
from agent.hostsetup.keys import new_key_pair
from agent.paths import ServerPaths
from agent.report import Report
from agent.repository import TENANT_KEY, TENANT_KNOWN_HOSTS, TENANT_SSH_DIR

CLIENT_VENV = "/opt/dupstack-client"
DUPLICITY_PIN = "3.2.1"
MIN_DUPLICITY = (3, 0)
# What duplicity needs for sftp:// beyond itself (its declared dependencies are dozens of SDKs).
CLIENT_PACKAGES = ("fasteners", "paramiko")


def install_duplicity_argvs() -> tuple[tuple[str, ...], ...]:
    """duplicity in its own venv on the host, linked into /usr/local/bin."""
    pip = f"{CLIENT_VENV}/bin/pip"
    return (
        ("python3", "-m", "venv", CLIENT_VENV),
        (pip, "install", "--quiet", "--no-deps", f"duplicity=={DUPLICITY_PIN}"),
        (pip, "install", "--quiet", *CLIENT_PACKAGES),
        ("ln", "-sfn", f"{CLIENT_VENV}/bin/duplicity", "/usr/local/bin/duplicity"),
    )


def install_file_argv(path: str) -> tuple[str, ...]:
    """Write stdin to `path`, root-only from the start."""
    return ("install", "-m", "0600", "/dev/stdin", path)


def duplicity_version(output: str) -> tuple[int, ...] | None:
    """(3, 2, 1) from `duplicity --version` output; None if there is no version in it."""
    found = re.search(r"^duplicity (\d+)\.(\d+)(?:\.(\d+))?", output, re.M)
    return tuple(int(part) for part in found.groups() if part is not None) if found else None


def ensure_duplicity(tenant: remote.Session, install: bool, report: Report) -> None:
    """duplicity >= 3 on the host, installed in a venv there if asked."""
    name = tenant.host.name

    def found() -> tuple[int, ...] | None:
        done = tenant.run(("duplicity", "--version"), ok_codes=(0, 1, 127))
        return duplicity_version(done.stdout)

    version = found()
    if version is not None and version >= MIN_DUPLICITY:
        report.step("duplicity", f"{'.'.join(map(str, version))} on {name}", False)
        return
    seen = f"duplicity {'.'.join(map(str, version))}" if version else "no duplicity"
    if not install:
        raise HostNotReady(
            f"{name}: {seen} found; backups need duplicity >= 3.0 on the host",
            hint=f"rerun with --install (a venv in {CLIENT_VENV} on {name}), or install "
            f"duplicity=={DUPLICITY_PIN} on {name} yourself",
        )
    for argv in install_duplicity_argvs():
        tenant.run(argv, timeout=600)
    version = found()
    if version is None or version < MIN_DUPLICITY:
        raise HostNotReady(f"{name}: duplicity still not usable after --install")
    report.step("duplicity", f"{seen} before: installed {DUPLICITY_PIN} in {CLIENT_VENV}", True)


def sftp_key_pair(tenant: remote.Session, account: str) -> tuple[str | None, str]:
    """(private key to install or None, public key line): the host's own key if it has one
    (a rerun, or this server rebuilt), else a new one."""
    existing = tenant.run(("ssh-keygen", "-y", "-f", TENANT_KEY), ok_codes=(0, 1, 255))
    if existing.exit_code == 0 and existing.stdout.strip():
        key_type, key = existing.stdout.split()[:2]
        return None, f"{key_type} {key} {account}@dupstack"
    return new_key_pair(f"{account}@dupstack")


def install_tenant_files(
    paths: ServerPaths,
    tenant: remote.Session,
    private_key: str | None,
    server: tuple[str, int],
    report: Report,
) -> None:
    """The host's SFTP private key (if new) and this server's pinned host key, 0600 on it."""
    host_key = (paths.sshd_dir / "ssh_host_ed25519_key.pub").read_text().split()
    known = f"{remote.known_hosts_name(*server)} {host_key[0]} {host_key[1]}\n"
    tenant.run(("install", "-d", "-m", "0700", TENANT_SSH_DIR))
    changes = []
    if private_key is not None:
        tenant.run(install_file_argv(TENANT_KEY), input=private_key)
        changes.append(TENANT_KEY)
    current = tenant.run(("cat", TENANT_KNOWN_HOSTS), ok_codes=(0, 1)).stdout
    if current != known:
        tenant.run(install_file_argv(TENANT_KNOWN_HOSTS), input=known)
        changes.append(TENANT_KNOWN_HOSTS)
    name = tenant.host.name
    text = f"{name}: {', '.join(changes)}" if changes else f"{name}: SFTP key and pin (kept)"
    report.step("host files", text, bool(changes))


def sftp_probe_argv(account: str, server: tuple[str, int]) -> tuple[str, ...]:
    """sftp from the host into its chroot with exactly the key and pin its backups use."""
    address, port = server
    return (
        "sftp", "-b", "-", "-P", str(port),
        "-o", f"IdentityFile={TENANT_KEY}", "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={TENANT_KNOWN_HOSTS}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
        f"{account}@{address}",
    )  # fmt: skip


def probe_sftp(
    tenant: remote.Session, account: str, server: tuple[str, int], report: Report
) -> None:
    """From the host, list its chroot over SFTP as its backups will reach it."""
    url = f"sftp://{account}@{server[0]}/backups"
    try:
        tenant.run(sftp_probe_argv(account, server), input="ls /backups\n", timeout=60)
    except RemoteCommandFailed as error:
        raise RemoteCommandFailed(
            f"{tenant.host.name} cannot reach {url}: {error.message}",
            hint=f"{tenant.host.name} must reach {server[0]}:{server[1]} (security group); "
            "check the server address in the inventory and that sshd runs here",
        ) from error
    report.step("probe", f"{tenant.host.name} reaches {url}", False)

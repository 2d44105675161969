"""`dupctl host add`: make a tenant host ready for backups; idempotent.

On this server: the host's chrooted SFTP account `dup-NAME` (group dupstack-sftp, no shell),
its chroot on the volume, its SFTP public key and the sshd drop-in. On the host (over SSH,
pinned): duplicity >= 3, its SFTP private key and this server's pinned host key; then a probe
from the host into its chroot. The inventory is written last. See docs/backups-design.md.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import execute, remote
from agent.actions.init import Report
from agent.config.load import BUILTIN_DEFAULTS, load_inventory, save_host
from agent.errors import CommandFailed, HostNotReady, RemoteCommandFailed, UsageError
from agent.files import write_atomic
from agent.paths import ServerPaths
from agent.repository import TENANT_KEY, TENANT_KNOWN_HOSTS, TENANT_SSH_DIR
from agent.schedule import crontab

SFTP_GROUP = "dupstack-sftp"
HOST_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,27}")  # as in agent/config/schema.json
CLIENT_VENV = "/opt/dupstack-client"
DUPLICITY_PIN = "3.2.1"
MIN_DUPLICITY = (3, 0)
# What duplicity needs for sftp:// beyond itself (its declared dependencies are dozens of SDKs).
CLIENT_PACKAGES = ("fasteners", "paramiko")
SSHD_RELOAD_WAIT = 5.0


@dataclass(frozen=True)
class HostRequest:
    """What `dupctl host add` was asked; None: keep the inventory's (or default) value."""

    name: str
    address: str
    user: str | None = None
    port: int | None = None
    paths: tuple[str, ...] | None = None
    excludes: tuple[str, ...] | None = None
    host_key: str | None = None  # an OpenSSH public key line: pin this one
    install: bool = False  # install duplicity on the host if it lacks it
    server_address: str | None = None  # how hosts reach this server (inventory's by default)


@dataclass(frozen=True)
class Inventoried:
    """What the inventory holds now: its server section, defaults, and this host's own keys."""

    server: dict[str, Any]
    defaults: dict[str, Any]  # dupstack's defaults with the file's
    own: dict[str, Any]

    @classmethod
    def read(cls, paths: ServerPaths, name: str) -> Inventoried:
        if not paths.config_file.exists():
            return cls({}, dict(BUILTIN_DEFAULTS), {})
        load_inventory(paths)  # validates: errors name the file and the key
        document = yaml.safe_load(paths.config_file.read_text())
        defaults = {**BUILTIN_DEFAULTS, **(document.get("defaults") or {})}
        return cls(document["server"], defaults, document["hosts"].get(name) or {})

    def setting(self, key: str, given: Any) -> Any:
        """`given` if set, else the host's own value, else the default."""
        return given if given is not None else self.own.get(key, self.defaults[key])


def sftp_account(name: str) -> str:
    return f"dup-{name}"


# Pure builders: commands and file contents.


def groupadd_argv() -> tuple[str, ...]:
    return ("groupadd", "--system", SFTP_GROUP)


def useradd_argv(account: str) -> tuple[str, ...]:
    """An SFTP-only system account; '*' is an unusable password that is not a lock ('!'):
    sshd without PAM refuses locked accounts even with a valid key."""
    return (
        "useradd", "--system", "--user-group", "--groups", SFTP_GROUP,
        "--home-dir", "/", "--no-create-home", "--shell", "/usr/sbin/nologin",
        "--password", "*", account,
    )  # fmt: skip


def usermod_join_argv(account: str) -> tuple[str, ...]:
    return ("usermod", "--append", "--groups", SFTP_GROUP, account)


def sshd_dropin(paths: ServerPaths) -> str:
    """sshd settings for every host account: chrooted, SFTP only, no deleting or renaming."""
    return (
        "# Written by dupctl host add (docs/backups-design.md): tenant hosts' SFTP accounts.\n"
        f"Match Group {SFTP_GROUP}\n"
        f"    ChrootDirectory {paths.hosts_dir}/%u\n"
        f"    AuthorizedKeysFile {paths.sftp_keys_dir}/%u\n"
        "    ForceCommand internal-sftp"
        " -P remove,rename,posix-rename,symlink,hardlink,setstat,fsetstat\n"
        "    AllowTcpForwarding no\n"
        "    X11Forwarding no\n"
        "    PermitTTY no\n"
    )


def sshd_check_argv(paths: ServerPaths) -> tuple[str, ...]:
    return ("sshd", "-t", "-f", str(paths.sshd_dir / "sshd_config"))


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


def new_key_pair(comment: str) -> tuple[str, str]:
    """A fresh ed25519 key: (OpenSSH private key text, public key line)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, f"{public.decode()} {comment}"


def same_key(line: str, other: str) -> bool:
    """Whether two public key lines hold the same key (comments aside)."""
    return line.split()[:2] == other.split()[:2]


# The action.


def add_host(
    paths: ServerPaths, request: HostRequest, ssh: remote.Ssh, say: Callable[[str], None]
) -> Report:
    """Make `request.name` ready for backups; returns what changed (nothing on a rerun)."""
    if not HOST_NAME.fullmatch(request.name):
        raise UsageError(
            f"bad host name {request.name!r}",
            hint="1 to 28 lowercase letters, digits or '-' (it becomes the account dup-NAME)",
        )
    inventoried = Inventoried.read(paths, request.name)
    server = server_endpoint(paths, inventoried, request)
    if not os.path.ismount(paths.mount_point):
        raise UsageError(
            f"the backup volume is not mounted at {paths.mount_point}", hint="run dupctl init"
        )
    report = Report(say)
    say(f"dupctl host add {request.name} ({request.address})")
    ensure_server_key(ssh, report)
    target = remote.Target(
        request.name,
        request.address,
        inventoried.setting("user", request.user),
        inventoried.setting("port", request.port),
    )
    pin_host_key(ssh, target, request.host_key, report)
    account = sftp_account(request.name)
    with remote.session(ssh, target) as tenant:
        ensure_duplicity(tenant, request.install, report)
        private, public = sftp_key_pair(tenant, account)
        ensure_account(paths, account, public, report)
        ensure_sshd_dropin(paths, server, report)
        install_tenant_files(paths, tenant, private, server, report)
        probe_sftp(tenant, account, server, report)
    record_host(paths, inventoried, request, report)
    changed = crontab.refresh(paths)
    report.step("schedule", f"{paths.hosts_cron_file}{'' if changed else ' (kept)'}", changed)
    say(
        f"host add {request.name}: {len(report.changes)} change(s): {', '.join(report.changes)}"
        if report.changes
        else f"host add {request.name}: nothing changed"
    )
    return report


def sftp_key_pair(tenant: remote.Session, account: str) -> tuple[str | None, str]:
    """(private key to install or None, public key line): the host's own key if it has one
    (a rerun, or this server rebuilt), else a new one."""
    existing = tenant.run(("ssh-keygen", "-y", "-f", TENANT_KEY), ok_codes=(0, 1, 255))
    if existing.exit_code == 0 and existing.stdout.strip():
        key_type, key = existing.stdout.split()[:2]
        return None, f"{key_type} {key} {account}@dupstack"
    return new_key_pair(f"{account}@dupstack")


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


def server_endpoint(
    paths: ServerPaths, inventoried: Inventoried, request: HostRequest
) -> tuple[str, int]:
    """(address, port) by which hosts reach this server: --server-address, or the inventory."""
    address = request.server_address or inventoried.server.get("address")
    if not address:
        raise UsageError(
            f"{paths.config_file} does not exist yet: how do hosts reach this server?",
            hint="give this server's private address once: --server-address ADDRESS",
        )
    return address, inventoried.server.get("port", 22)


def ensure_server_key(ssh: remote.Ssh, report: Report) -> None:
    """The key this server logs in to hosts with; made once."""
    if ssh.key_file.exists():
        return
    ssh.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    private, public = new_key_pair(f"dupstack@{socket.gethostname()}")
    write_atomic(ssh.key_file, private, 0o600)
    write_atomic(Path(f"{ssh.key_file}.pub"), public + "\n", 0o644)
    report.step("server key", f"{ssh.key_file} made: authorize it on each host: {public}", True)


def pin_host_key(ssh: remote.Ssh, target: remote.Target, given: str | None, report: Report) -> None:
    """Pin the host's SSH key: the one given, else the pinned one, else the one it offers."""
    pinned = remote.pinned_key(ssh, target)
    if given is not None:
        key = remote.parse_public_key(given)
        how = "given by --host-key"
    elif pinned is not None:
        key, how = pinned, "pinned"
    else:
        key = remote.scan_host_key(target, ssh.connect_timeout)
        how = f"first seen: check it on {target.name}'s console"
    changed = pinned is None or remote.public_key_line(pinned) != remote.public_key_line(key)
    if changed:
        old = ssh.known_hosts.read_text() if ssh.known_hosts.exists() else ""
        write_atomic(ssh.known_hosts, remote.pinned_lines(old, target, key), 0o600)
    report.step("host key", f"{key.fingerprint} ({how})", changed)


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


def ensure_account(paths: ServerPaths, account: str, public_key: str, report: Report) -> None:
    """The SFTP-only account, its chroot on the volume and its authorized key."""
    changes = []
    try:
        grp.getgrnam(SFTP_GROUP)
    except KeyError:
        execute.run(groupadd_argv())
        changes.append(f"group {SFTP_GROUP}")
    try:
        pwd.getpwnam(account)
        if account not in grp.getgrnam(SFTP_GROUP).gr_mem:
            execute.run(usermod_join_argv(account))
            changes.append(f"{account} joined {SFTP_GROUP}")
    except KeyError:
        execute.run(useradd_argv(account))
        changes.append(f"user {account}")
    gid = grp.getgrnam(account).gr_gid
    chroot = paths.hosts_dir / account
    for directory, group, mode in (
        (paths.hosts_dir, 0, 0o755),
        (chroot, 0, 0o755),  # sshd requires a root-owned chroot nobody else may write
        (chroot / "backups", gid, 0o1770),  # sticky: the account cannot delete root's files
    ):
        if _ensure_dir(directory, group, mode):
            changes.append(str(directory))
    _ensure_dir(paths.sftp_keys_dir.parent, 0, 0o755)
    _ensure_dir(paths.sftp_keys_dir, 0, 0o755)  # sshd reads it as the account
    key_file = paths.sftp_keys_dir / account
    current = key_file.read_text() if key_file.exists() else ""
    if not (current and same_key(current, public_key)):
        write_atomic(key_file, public_key + "\n", 0o644)
        changes.append(f"key {key_file}")
    report.step("account", "; ".join(changes) or f"{account} (kept)", bool(changes))


def _ensure_dir(path: Path, gid: int, mode: int) -> bool:
    """`path` as a directory owned by root:gid with `mode`; whether anything changed."""
    try:
        status = path.stat()
    except FileNotFoundError:
        path.mkdir()
    else:
        if (status.st_uid, status.st_gid, status.st_mode & 0o7777) == (0, gid, mode):
            return False
    os.chown(path, 0, gid)
    path.chmod(mode)
    return True


def ensure_sshd_dropin(paths: ServerPaths, server: tuple[str, int], report: Report) -> None:
    """The Match block for host accounts, checked with `sshd -t`; reloads a running sshd."""
    dropin = paths.sshd_dropin
    before = dropin.read_bytes() if dropin.exists() else None
    if not write_atomic(dropin, sshd_dropin(paths), 0o644):
        report.step("sshd", f"{dropin} (kept)", False)
        return
    try:
        execute.run(sshd_check_argv(paths))
    except CommandFailed:
        if before is None:
            dropin.unlink()
        else:
            write_atomic(dropin, before, 0o644)
        raise
    reloaded = reload_sshd(paths, server)
    report.step("sshd", f"{dropin} written{', sshd reloaded' if reloaded else ''}", True)


def reload_sshd(paths: ServerPaths, server: tuple[str, int]) -> bool:
    """SIGHUP to the sshd of /run/sshd.pid, then wait until it accepts connections again."""
    try:
        pid = int(paths.sshd_pid_file.read_text())
        os.kill(pid, signal.SIGHUP)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False
    deadline = time.monotonic() + SSHD_RELOAD_WAIT
    while True:  # sshd re-executes itself on SIGHUP: there is a short time it does not listen
        try:
            with socket.create_connection(server, timeout=1) as sock:
                if sock.recv(4) == b"SSH-":
                    return True
        except OSError:
            if time.monotonic() > deadline:
                raise CommandFailed(
                    f"sshd did not come back on {server[0]}:{server[1]} after a reload"
                ) from None
            time.sleep(0.05)


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


def record_host(
    paths: ServerPaths, inventoried: Inventoried, request: HostRequest, report: Report
) -> None:
    """Add the host to the inventory, keeping its other settings and every other host."""
    given = {
        "address": request.address,
        "user": request.user,
        "port": request.port,
        "paths": list(request.paths) if request.paths else None,
        "excludes": list(request.excludes) if request.excludes else None,
    }
    own = inventoried.own
    settings = {**own, **{key: value for key, value in given.items() if value is not None}}
    server = inventoried.server
    if request.server_address:
        server = {**server, "address": request.server_address}
    if settings == own and server == inventoried.server:
        report.step("inventory", f"{paths.config_file} (kept)", False)
        return
    save_host(paths, {"name": request.name, **settings}, server=server)
    report.step("inventory", f"{request.name} in {paths.config_file}", True)

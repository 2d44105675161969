"""This server's sshd drop-in for the tenant accounts: chrooted, SFTP only, nothing but
reading and writing new files; checked with `sshd -t` before a reload."""

from __future__ import annotations

import os
import signal
import socket
import time

from agent import execute
from agent.errors import CommandFailed
from agent.files import write_atomic
from agent.hostsetup.accounts import SFTP_GROUP
from agent.paths import ServerPaths
from agent.report import Report

SSHD_RELOAD_WAIT = 5.0


def sshd_dropin(paths: ServerPaths) -> str:
    """sshd settings for every host account: chrooted, SFTP only, no deleting or renaming."""
    return (
        "# Written by dupctl host add (docs/backups-design.md): tenant hosts' SFTP accounts.\n"
        f"Match Group {SFTP_GROUP}\n"
        f"    ChrootDirectory {paths.hosts_dir}/%u\n"
        f"    AuthorizedKeysFile {paths.sftp_keys_dir}/%u\n"
        "    ForceCommand internal-sftp"
        " -P remove,rename,posix-rename,symlink,hardlink,setstat,fsetstat,lsetstat,mkdir,rmdir,"
        "copy-data\n"
        "    AllowTcpForwarding no\n"
        "    X11Forwarding no\n"
        "    PermitTTY no\n"
    )


def sshd_check_argv(paths: ServerPaths) -> tuple[str, ...]:
    return ("sshd", "-t", "-f", str(paths.sshd_dir / "sshd_config"))


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

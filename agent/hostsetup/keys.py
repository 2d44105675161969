"""SSH keys of `host add`: new ed25519 key pairs, this server's own login key, and the pin of
each tenant host's SSH host key (never trusted silently: a change needs --host-key or an
explicit confirmation after the new key was shown)."""

from __future__ import annotations

import socket
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import remote
from agent.errors import HostKeyRejected
from agent.files import write_atomic
from agent.report import Report


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


def ensure_server_key(ssh: remote.Ssh, report: Report) -> None:
    """The key this server logs in to hosts with; made once."""
    if ssh.key_file.exists():
        return
    ssh.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    private, public = new_key_pair(f"dupstack@{socket.gethostname()}")
    write_atomic(ssh.key_file, private, 0o600)
    write_atomic(Path(f"{ssh.key_file}.pub"), public + "\n", 0o644)
    report.step("server key", f"{ssh.key_file} made: authorize it on each host: {public}", True)


def pin_host_key(
    ssh: remote.Ssh,
    target: remote.Target,
    given: str | None,
    report: Report,
    *,
    moved_from: remote.Target | None = None,
    accept_new: bool = False,
) -> None:
    """Pin the host's SSH key: the one given, else the pinned one, else the one it offers.

    A host that was pinned at another address (`moved_from`) offers its key at the new one
    only to be shown: it is pinned with --host-key or --accept-new-host-key (HostKeyRejected
    otherwise, nothing changed), and the old address's pin goes."""
    pinned = remote.pinned_key(ssh, target)
    if given is not None:
        key = remote.parse_public_key(given)
        how = "given by --host-key"
    elif pinned is not None:
        key, how = pinned, "pinned"
    else:
        key = remote.scan_host_key(target, ssh.connect_timeout)
        how = f"first seen: check it on {target.name}'s console"
        if moved_from is not None and remote.pinned_key(ssh, moved_from) is not None:
            if not accept_new:
                raise HostKeyRejected(
                    f"{target.name} moves from {moved_from.address} to {target.address}, where "
                    f"it offers SSH host key {key.fingerprint}: not pinned yet",
                    hint=f"check that key on {target.name}'s console, then rerun with "
                    "--accept-new-host-key (or --host-key FILE with the key from the console)",
                )
            how = f"accepted at the new address (was {moved_from.address})"
    changed = pinned is None or remote.public_key_line(pinned) != remote.public_key_line(key)
    old = ssh.known_hosts.read_text() if ssh.known_hosts.exists() else ""
    pins = remote.pinned_lines(old, target, key)
    if moved_from is not None:
        pins = remote.pinned_lines(pins, moved_from, None)
    if pins != old:
        write_atomic(ssh.known_hosts, pins, 0o600)
    report.step("host key", f"{key.fingerprint} ({how})", changed)

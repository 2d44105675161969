"""Each host's duplicity passphrase, derived from the stack secret (docs/backups-design.md).

    sha256("dupstack host passphrase v1\n" + <passphrase file, with its "\n"> + H + "\n")

as 64 lowercase hex characters; by hand, without a secret in any argv:

    { echo 'dupstack host passphrase v1'; cat /etc/duplicity/passphrase; echo H; } | sha256sum
"""

from __future__ import annotations

import hashlib

from agent.errors import KeyMismatch
from agent.paths import ServerPaths

DERIVATION = b"dupstack host passphrase v1\n"


def host_passphrase(stack_secret_file_bytes: bytes, host: str) -> str:
    """The passphrase of `host` from the stack secret file's bytes exactly as stored."""
    if not stack_secret_file_bytes.strip():
        raise ValueError("the stack secret is empty")
    if not host or "\n" in host:
        raise ValueError(f"not a host name: {host!r}")
    digest = hashlib.sha256(DERIVATION + stack_secret_file_bytes + host.encode() + b"\n")
    return digest.hexdigest()


def read_host_passphrase(paths: ServerPaths, host: str) -> str:
    """The passphrase of `host` from this server's stack secret (KeyMismatch if it has none)."""
    file = paths.passphrase_file
    try:
        secret = file.read_bytes()
    except FileNotFoundError:
        secret = b""
    if not secret.strip():
        raise KeyMismatch(
            f"the stack secret {file} is missing or empty",
            hint="run `dupctl init`: it restores the secret from the volume's escrow",
        )
    return host_passphrase(secret, host)

"""GnuPG operations through python-gnupg: secrets go to gpg on a pipe, never in argv."""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import gnupg

from agent import execute
from agent.errors import CommandFailed, PasscodeError

# python-gnupg logs gpg's output (decrypted data included) at DEBUG, and gpg's status lines
# as warnings: dupctl reports gpg failures itself, in one line.
logging.getLogger("gnupg").setLevel(logging.ERROR)

# Strong key derivation for the escrow, whose only protection is the user's passcode.
SYMMETRIC_OPTIONS = [
    "--s2k-mode", "3", "--s2k-digest-algo", "SHA512", "--s2k-count", "65011712",
    "--no-symkey-cache",
]  # fmt: skip


# gpg-agent calibrates its key-protection count at every start (3 s on a small VM); a fixed
# count of about the same strength (~0.1 s) skips that. The passphrase is random anyway.
AGENT_CONF = "s2k-count 16777216\n"


def open_keyring(home: Path) -> gnupg.GPG:
    """A python-gnupg handle on `home`, created (0700, with its agent settings) if missing."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    conf = home / "gpg-agent.conf"
    if not conf.exists():
        conf.write_text(AGENT_CONF)
    # Reading keys must not rewrite the trust database: a rerun of init changes nothing.
    # Never a pinentry (there is no terminal): gpg itself answers the agent's passphrase
    # questions, which keeps key generation from failing "Inappropriate ioctl for device".
    return gnupg.GPG(
        gnupghome=str(home), options=["--no-auto-check-trustdb", "--pinentry-mode", "loopback"]
    )


def stop_agent(home: Path) -> None:
    """Stop the gpg-agent that any gpg call on `home` leaves behind."""
    execute.run(("gpgconf", "--homedir", str(home), "--kill", "gpg-agent"))


@contextlib.contextmanager
def temporary_keyring() -> Iterator[gnupg.GPG]:
    """A throw-away keyring (for symmetric work), removed with its agent afterwards."""
    home = Path(tempfile.mkdtemp(prefix="dupstack-gnupg-"))
    try:
        yield open_keyring(home)
    finally:
        stop_agent(home)
        shutil.rmtree(home, ignore_errors=True)


def generate_key(home: Path, passphrase: str) -> str:
    """A new signing key with an encryption subkey, protected by `passphrase`; its fingerprint."""
    gpg = open_keyring(home)
    params = gpg.gen_key_input(
        key_type="EDDSA",
        key_curve="ed25519",
        key_usage="sign",
        subkey_type="ECDH",
        subkey_curve="cv25519",
        subkey_usage="encrypt",
        name_real="dupstack backup key",
        name_email=f"root@{socket.gethostname()}",
        expire_date="0",
        passphrase=passphrase,
    )
    result = gpg.gen_key(params)
    if not result.fingerprint:
        raise CommandFailed(f"gpg could not generate the backup key: {result.stderr.strip()}")
    return result.fingerprint


def secret_fingerprints(home: Path) -> list[str]:
    """Fingerprints of the secret keys in `home` (none if it does not exist)."""
    if not home.is_dir():
        return []
    return [key["fingerprint"] for key in open_keyring(home).list_keys(secret=True)]


def export_secret_key(home: Path, fingerprint: str, passphrase: str) -> str:
    """The armored secret key (still protected by its passphrase)."""
    exported = open_keyring(home).export_keys(fingerprint, secret=True, passphrase=passphrase)
    if "PRIVATE KEY BLOCK" not in exported:
        raise CommandFailed(f"gpg could not export the secret key {fingerprint}")
    return exported


def import_secret_key(home: Path, armored: str, passphrase: str) -> list[str]:
    """Import a secret key and trust it ultimately (as gpg does for keys it generates)."""
    gpg = open_keyring(home)
    result = gpg.import_keys(armored, passphrase=passphrase)
    if not result.fingerprints or not result.sec_imported:
        raise CommandFailed(f"gpg could not import the secret key: {result.stderr.strip()}")
    gpg.trust_keys(result.fingerprints, "TRUST_ULTIMATE")
    return sorted(set(result.fingerprints))


def encrypt_symmetric(data: bytes, passcode: str) -> bytes:
    """`data` as a binary OpenPGP message (AES256) that `gpg --decrypt` opens with `passcode`."""
    with temporary_keyring() as gpg:
        result = gpg.encrypt(
            data,
            None,
            symmetric="AES256",
            passphrase=passcode,
            armor=False,
            extra_args=SYMMETRIC_OPTIONS,
        )
    if not result.ok:
        raise CommandFailed(f"gpg could not encrypt: {result.status}")
    return result.data


def decrypt_symmetric(data: bytes, passcode: str, what: str) -> bytes:
    """Decrypt what `encrypt_symmetric` made; PasscodeError if `passcode` is not the one."""
    with temporary_keyring() as gpg:
        result = gpg.decrypt(data, passphrase=passcode, extra_args=["--no-symkey-cache"])
    if result.ok:
        return result.data
    if "bad session key" in result.stderr.lower() or "BAD_PASSPHRASE" in result.stderr:
        raise PasscodeError(
            f"wrong passcode for {what}",
            hint="give the passcode the volume was created with: dupctl init --passcode-file -",
        )
    raise CommandFailed(f"gpg could not decrypt {what}: {result.status}")

"""The key escrow on the volume: the key material, encrypted with the user's passcode.

Standard formats only, so a human can recover with stock tools (see README_TEXT):
`escrow.tar.gpg` is `gpg --symmetric` (AES256, passphrase = passcode) of a tar holding
the armored secret key, its passphrase and the ownertrust line.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from agent.errors import CommandFailed
from agent.files import make_private_dir, write_atomic
from agent.keys.keyring import decrypt_symmetric, encrypt_symmetric

ESCROW = "escrow.tar.gpg"
METADATA = "escrow.json"  # the fingerprint in clear, to check keys without the passcode
README = "README.txt"
FOLDER = "dupstack-keys"
FORMAT = 1


@dataclass(frozen=True)
class KeyMaterial:
    """Everything needed to read (and later derive per-host secrets from) the backups."""

    fingerprint: str
    secret_key: str  # armored, protected by `passphrase`
    passphrase: str

    @property
    def ownertrust(self) -> str:
        return f"{self.fingerprint}:6:\n"


def pack(material: KeyMaterial) -> bytes:
    """A tar of the key material (files under dupstack-keys/)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, text in (
            ("secret-key.asc", material.secret_key),
            ("passphrase", material.passphrase + "\n"),
            ("ownertrust.txt", material.ownertrust),
        ):
            data = text.encode()
            info = tarfile.TarInfo(f"{FOLDER}/{name}")
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def unpack(data: bytes) -> KeyMaterial:
    """The key material from a tar made by `pack`."""
    try:
        files = {}
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                extracted = tar.extractfile(member)
                if extracted is not None:
                    files[member.name] = extracted.read().decode()
        return KeyMaterial(
            fingerprint=files[f"{FOLDER}/ownertrust.txt"].split(":")[0],
            secret_key=files[f"{FOLDER}/secret-key.asc"],
            passphrase=files[f"{FOLDER}/passphrase"].rstrip("\n"),
        )
    except (tarfile.TarError, KeyError, UnicodeDecodeError) as error:
        raise CommandFailed(f"the key escrow is damaged: {error}") from error


def has_escrow(state_dir: Path) -> bool:
    return (state_dir / ESCROW).is_file()


def escrow_fingerprint(state_dir: Path) -> str | None:
    """The fingerprint recorded next to the escrow, if readable."""
    try:
        return json.loads((state_dir / METADATA).read_text())["fingerprint"]
    except (OSError, ValueError, KeyError):
        return None


def write_escrow(state_dir: Path, material: KeyMaterial, passcode: str) -> None:
    """Seal `material` with `passcode` onto the volume, with the recovery README."""
    sealed = encrypt_symmetric(pack(material), passcode)
    if unpack(decrypt_symmetric(sealed, passcode, "the new key escrow")) != material:
        raise CommandFailed("the new key escrow does not give the keys back; nothing written")
    make_private_dir(state_dir)
    write_atomic(state_dir / ESCROW, sealed)
    write_atomic(
        state_dir / METADATA,
        json.dumps({"format": FORMAT, "fingerprint": material.fingerprint}, indent=2) + "\n",
    )
    write_atomic(state_dir / README, README_TEXT.format(fingerprint=material.fingerprint), 0o644)


def open_escrow(state_dir: Path, passcode: str) -> KeyMaterial:
    """The key material in the escrow; PasscodeError if `passcode` does not open it."""
    sealed = (state_dir / ESCROW).read_bytes()
    return unpack(decrypt_symmetric(sealed, passcode, f"the key escrow {state_dir / ESCROW}"))


README_TEXT = """\
dupstack key escrow
===================

escrow.tar.gpg holds the backup keys of this volume, encrypted with the passcode chosen
when the stack was created (gpg --symmetric, AES256). Key fingerprint:

    {fingerprint}

With the volume and the passcode alone, a new server gets the keys back:
  - automatically: launch the dupstack *restore* template on this volume with the passcode
    (or run `dupctl init --mode restore --passcode-file -` on a server with dupstack);
  - by hand, with stock gpg, tar and duplicity (as root, volume mounted at /mnt/vdb
    without writing it: a copy of it, or `mount -o ro,noload`; plain `-o ro` refuses a
    volume whose server died):

    gpg --decrypt /mnt/vdb/.dupstack/escrow.tar.gpg > /root/escrow.tar   # asks the passcode
    tar -xf /root/escrow.tar -C /root                                    # -> /root/dupstack-keys/
    export GNUPGHOME=/root/dupstack-gnupg && mkdir -m 700 -p "$GNUPGHOME"
    gpg --batch --pinentry-mode loopback --passphrase-file /root/dupstack-keys/passphrase \\
        --import /root/dupstack-keys/secret-key.asc
    gpg --import-ownertrust /root/dupstack-keys/ownertrust.txt
    export PASSPHRASE="$(cat /root/dupstack-keys/passphrase)"
    duplicity restore file:///mnt/vdb/local-etc /root/restored-etc

PASSPHRASE unlocks the secret key (backups made with --encrypt-key) and also decrypts
backups made without a key (symmetric).

A tenant host H's backups (/mnt/vdb/hosts/dup-H/backups) are encrypted with a passphrase
derived from the stack secret; after the steps above:

    WORK=/root H=web1    # H: the host's name (ls /mnt/vdb/hosts shows dup-H)
    export PASSPHRASE="$({{ echo 'dupstack host passphrase v1'; \
        cat "$WORK/dupstack-keys/passphrase"; echo "$H"; }} | sha256sum | cut -d' ' -f1)"
    TZ=UTC duplicity collection-status --archive-dir "$WORK/cache" \
        "file:///mnt/vdb/hosts/dup-$H/backups"
    duplicity restore --numeric-owner --archive-dir "$WORK/cache" \
        "file:///mnt/vdb/hosts/dup-$H/backups" "/root/restored-$H"

Step by step, without dupstack: docs/disaster-recovery.md in the dupstack sources.
Shred /root/escrow.tar and /root/dupstack-keys, and remove /root/cache, when done.
"""

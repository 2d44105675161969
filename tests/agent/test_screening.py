"""agent.screening with real gpg: what a planted file can make gpg say never breaks a run."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from agent.screening import decrypt_all


def _literal_packet(name: bytes, data: bytes) -> bytes:
    """An OpenPGP literal-data packet (RFC 4880 5.9, new format), not encrypted at all."""
    body = b"b" + bytes([len(name)]) + name + struct.pack(">I", 1_763_493_957) + data
    assert len(body) < 192  # a one-octet length
    return bytes([0xC0 | 11, len(body)]) + body


def test_a_plain_packet_with_a_non_utf8_name_is_refused_not_an_error(tmp_path: Path) -> None:
    """gpg echoes a literal packet's file name in its status (PLAINTEXT): bytes that are not
    UTF-8 there once ended a run with UnicodeDecodeError; such a file does not decrypt."""
    planted = tmp_path / "duplicity-full.20261203T000000Z.manifest.gpg"
    planted.write_bytes(_literal_packet(b"\x98\x81\x9c\xe6\xb8\xf4", b"Hostname planted\n"))
    shown = subprocess.run(
        ["gpg", "--homedir", str(tmp_path), "--batch", "--status-fd", "1", "--decrypt",
         str(planted)], capture_output=True, check=False,
    )  # fmt: skip
    assert b"[GNUPG:] PLAINTEXT 62 1763493957 \x98\x81\x9c\xe6\xb8\xf4" in shown.stdout  # the case
    assert decrypt_all(tmp_path, [planted.name], "the host's passphrase") == {planted.name: False}

"""What is on the volume, by `blkid -p` (low-level probe: no cache, sees any signature)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent import execute

FS_TYPE = "ext4"
FS_LABEL = "dupstack"
# blkid exit codes: 0 found, 2 nothing found, 8 ambivalent (several signatures).
BLKID_FOUND, BLKID_NOTHING, BLKID_AMBIVALENT = 0, 2, 8


@dataclass(frozen=True)
class Probe:
    """The signatures `blkid -p` found on a device (empty when blank)."""

    tags: dict[str, str]
    ambivalent: bool = False

    @property
    def blank(self) -> bool:
        return not self.tags and not self.ambivalent

    @property
    def is_dupstack(self) -> bool:
        """An ext4 filesystem labelled by dupstack (ours to mount and use)."""
        return self.tags.get("TYPE") == FS_TYPE and self.tags.get("LABEL") == FS_LABEL

    @property
    def uuid(self) -> str:
        return self.tags.get("UUID", "")

    def describe(self) -> str:
        """One phrase for messages, e.g. 'a filesystem (xfs, label "data")'."""
        if self.ambivalent:
            return "several conflicting signatures"
        if "TYPE" not in self.tags and "PTTYPE" in self.tags:
            return f"a partition table ({self.tags['PTTYPE']})"
        label = self.tags.get("LABEL")
        return f"a filesystem ({self.tags.get('TYPE', 'unknown')}, " + (
            f'label "{label}")' if label else "no label)"
        )


def blkid_argv(device: Path) -> tuple[str, ...]:
    return ("blkid", "-p", "-o", "export", str(device))


def parse_blkid_export(text: str) -> dict[str, str]:
    """KEY=VALUE lines of `blkid -o export` as a dict."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def probe(device: Path) -> Probe:
    """Probe `device`; never trusts a cache, so a filesystem is never missed."""
    done = execute.run(blkid_argv(device), ok_codes=(BLKID_FOUND, BLKID_NOTHING, BLKID_AMBIVALENT))
    return Probe(
        tags=parse_blkid_export(done.stdout),
        ambivalent=done.exit_code == BLKID_AMBIVALENT,
    )

"""Thawing what a restore from an archive class needs, and no more.

duplicity never asks for a Glacier restore: it retries an archived volume and gives up
(exit 50). Its `--dry-run restore` names the volumes a path at a time needs ("Required
volumes to restore") while they are archived; only those are thawed. A ticket on the volume
(`.dupstack/thaw/HOST-TARGET.json`) keeps what was requested, so a second call continues
(polling) instead of asking again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from agent.files import write_atomic
from agent.paths import ServerPaths
from agent.runlog import stamp

REQUIRED = re.compile(r"^Required volumes to restore:\n((?:\t.*\n?)*)", re.MULTILINE)
# How long each tier takes to make an object readable (AWS's published times).
TIERS: Mapping[str, Mapping[str, tuple[str, timedelta]]] = {
    "GLACIER": {
        "expedited": ("1-5 minutes", timedelta(minutes=5)),
        "standard": ("3-5 hours", timedelta(hours=5)),
        "bulk": ("5-12 hours", timedelta(hours=12)),
    },
    "DEEP_ARCHIVE": {
        "standard": ("within 12 hours", timedelta(hours=12)),
        "bulk": ("within 48 hours", timedelta(hours=48)),
    },
}


def required_volumes(output: str) -> list[str]:
    """The volume names of `duplicity --dry-run restore`'s notice (in order, once each)."""
    found = REQUIRED.search(output)
    if not found:
        return []
    names = [line.strip() for line in found[1].splitlines() if line.strip()]
    return list(dict.fromkeys(names))


def tiers_for(storage_class: str) -> Mapping[str, tuple[str, timedelta]]:
    return TIERS.get(storage_class, {})


@dataclass
class Ticket:
    """What was asked of a target for a host: {volume: {"tier", "requested"}}."""

    file: Path
    requested: dict[str, dict[str, str]]

    @classmethod
    def of(cls, paths: ServerPaths, host: str, target: str) -> Ticket:
        file = paths.volume_state_dir / "thaw" / f"{host}-{target}.json"
        try:
            requested = json.loads(file.read_text())["requested"]
        except FileNotFoundError:
            requested = {}
        return cls(file, requested)

    def note(self, name: str, tier: str, days: int, now: datetime) -> None:
        self.requested[name] = {"tier": tier, "days": str(days), "requested": stamp(now)}
        self.file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.file, json.dumps({"requested": self.requested}, indent=1) + "\n")

    def eta(self, names: Sequence[str], classes: Mapping[str, str]) -> datetime | None:
        """When the last of `names` should be readable, by its tier's published time."""
        ends = []
        for name in names:
            entry = self.requested.get(name)
            if entry is None:
                continue
            asked = datetime.fromisoformat(entry["requested"].replace("Z", "+00:00"))
            _, takes = tiers_for(classes[name]).get(entry["tier"], ("", timedelta(hours=48)))
            ends.append(asked + takes)
        return max(ends) if ends else None


def poll(
    check: Callable[[], list[str]],
    say: Callable[[str], None],
    sleep: Callable[[float], None],
    first: float = 0.5,
    longest: float = 60.0,
) -> None:
    """Call `check` (the names still not readable) until it returns none, waiting with an
    exponential backoff from `first` to `longest` seconds between calls."""
    delay = first
    waiting = check()
    while waiting:
        say(f"waiting for {len(waiting)} object(s) to thaw (next check in {delay:g} s)")
        sleep(delay)
        delay = min(delay * 2, longest)
        waiting = check()

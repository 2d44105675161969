"""What duplicity does not keep, recorded before each backup and re-applied after a restore:
extended attributes (file capabilities and POSIX ACLs among them), hard links, holes.

The record (config METADATA_RECORD, inside the root-only spool every backup includes) is
written on the host by agent/data/fsmeta_capture.py in formats stock tools read back
(`setfattr --restore`, `ln`, `fallocate --dig-holes`: docs/disaster-recovery.md), and
re-applied by agent/data/fsmeta_apply.py wherever the files were restored. Pure: argv and
stdin for a Runner, and the report parsed into lines to show.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field

from agent import PACKAGE_DATA
from agent.config.load import DUMP_SPOOL, METADATA_RECORD
from agent.duplicity.common import Selection


def _script(name: str) -> str:
    return (PACKAGE_DATA / name).read_text()


def capture_command(selection: Selection) -> tuple[tuple[str, ...], str]:
    """(argv, stdin) that writes the record of `selection` on a host; prints its summary."""
    request = {
        "paths": list(selection.paths),
        "excludes": list(selection.excludes),
        "skip": [DUMP_SPOOL],
        "record": METADATA_RECORD,
    }
    return ("python3", "-c", _script("fsmeta_capture.py")), json.dumps(request)


def clear_command() -> tuple[str, ...]:
    """The record (and what a capture cut off left) removed after the run, and the spool if
    nothing else is in it."""
    script = 'rm -rf -- "$1" "$1.partial" && { rmdir -- "$2" 2>/dev/null || true; }'
    return ("sh", "-c", script, "sh", METADATA_RECORD, DUMP_SPOOL)


def apply_command(record: str, dest: str, within: str) -> tuple[tuple[str, ...], str]:
    """(argv, stdin) that re-applies `record` (a folder) to the files restored below `dest`
    (the host's "/" there), only those at `within` (relative to "/"; "" for all)."""
    request = {
        key: base64.b64encode(os.fsencode(value)).decode()
        for key, value in (("record", record), ("dest", dest), ("within", within))
    }
    return ("python3", "-c", _script("fsmeta_apply.py")), json.dumps(request)


def shown(name: bytes | str) -> str:
    """A name for a message: printable, one line, any byte visible (\\n, \\xff...)."""
    raw = os.fsencode(name)
    text = raw.decode("utf-8", errors="backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode-escape").decode() for c in text)


@dataclass(frozen=True)
class Report:
    """What re-applying a record did."""

    found: bool  # the set had a record (older sets do not)
    applied: dict[str, int] = field(default_factory=dict)  # xattrs, hardlinks, sparse
    failed: list[str] = field(default_factory=list)  # "/PATH: what: why"
    absent: list[str] = field(default_factory=list)  # recorded, not restored
    not_captured: list[str] = field(default_factory=list)  # "/PATH: why" at backup time
    apart: list[str] = field(default_factory=list)  # "/PATH and /OTHER: why" not linked

    @classmethod
    def parse(cls, stdout: str) -> Report:
        data = json.loads(stdout)

        def name(encoded: str) -> str:
            return "/" + shown(base64.b64decode(encoded))

        return cls(
            found=data["record"],
            applied={key: data[key] for key in ("xattrs", "hardlinks", "sparse")},
            failed=[
                f"{name(path)}: {what}{' ' + name(peer[0]) if peer else ''}: {why}"
                for path, what, why, *peer in data["failed"]
            ],
            absent=[name(path) for path in data.get("absent", [])],
            not_captured=[f"{name(path)}: {why}" for path, why in data["not_captured"]],
            apart=[
                f"{name(path)} and {name(other)}: {why}"
                for path, other, why in data.get("apart", [])
            ],
        )

    def lines(self) -> list[str]:
        """What to tell: a warning per path that lacks something, and the counts."""
        if not self.found:
            return [
                "warning: this set has no metadata record (made before dupstack recorded "
                "one): extended attributes, ACLs, file capabilities, hard links and holes, "
                "if it had any, are not restored"
            ]
        told = [f"warning: not re-applied: {line}" for line in self.failed]
        told += [f"warning: recorded but not restored: {path}" for path in self.absent]
        told += [f"warning: not recorded at backup time: {line}" for line in self.not_captured]
        told += [f"warning: hard link not re-made: {line}" for line in self.apart]
        names = {"xattrs": "extended attributes", "hardlinks": "hard links", "sparse": "holes"}
        counts = [
            f"{self.applied[key]} {shown}" for key, shown in names.items() if self.applied[key]
        ]
        if counts:  # files without any (most) have nothing to tell
            told.append(f"re-applied from the set's metadata record: {', '.join(counts)}")
        return told

"""duplicity collection-status: the command, and a parser of what it prints."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from agent.duplicity.common import DUPLICITY, Repository, repository_flags, verbosity_flags


def collection_status_command(
    repository: Repository,
    *,
    verbosity: str | None = None,
    local_path: str = DUPLICITY,
) -> tuple[str, ...]:
    """Chains and sets of the repository; run it with common.environment() (UTC, English)."""
    return (
        local_path,
        "collection-status",
        *repository_flags(repository),
        *verbosity_flags(verbosity),
        repository.url,
    )


@dataclass(frozen=True)
class BackupSet:
    """One full or incremental backup: its time and how many volumes it has."""

    kind: Literal["full", "incremental"]
    time: datetime
    volumes: int


@dataclass(frozen=True)
class BackupChain:
    """A full backup and the incrementals on top of it (`primary`: the one backups extend).

    duplicity still lists a chain whose full set lost its files, without that set's row:
    `has_full` is then False and nothing in the chain can be restored.
    """

    primary: bool
    start: datetime
    end: datetime
    sets: tuple[BackupSet, ...]

    @property
    def has_full(self) -> bool:
        return bool(self.sets) and self.sets[0].kind == "full"

    @property
    def volumes(self) -> int:
        return sum(backup_set.volumes for backup_set in self.sets)


@dataclass(frozen=True)
class CollectionStatus:
    """Every chain, oldest first, and the sets that belong to none."""

    chains: tuple[BackupChain, ...]
    orphaned_sets: int
    incomplete_sets: int

    @property
    def last_full(self) -> datetime | None:
        """When the newest full backup ran (None: none yet)."""
        return max((s.time for c in self.chains for s in c.sets if s.kind == "full"), default=None)

    @property
    def last_backup(self) -> datetime | None:
        """When the newest backup, full or incremental, ran (None: none yet)."""
        return max((s.time for c in self.chains for s in c.sets), default=None)


_CHAIN_START = re.compile(r"^(Secondary chain \d+ of \d+:|Found primary backup chain\b.*:)$")
_FIELD = re.compile(
    r"^(Chain start time|Chain end time|Number of contained backup sets|"
    r"Total number of contained volumes): (.+)$"
)
_SET = re.compile(r"^(Full|Incremental)\s+(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})\s+(\d+)$")
_ORPHANED = re.compile(r"^Also found (\d+) backup set\(s\) not part of any chain,$")
_INCOMPLETE = re.compile(r"^and (\d+) incomplete backup set\(s\)\.$")


def parse_collection_status(output: str) -> CollectionStatus:
    """The chains and sets that `collection-status` printed (times as UTC: its environment
    sets TZ=UTC). ValueError if it is not such output or a chain's rows and counts disagree."""
    if "Collection Status" not in output:
        raise ValueError("not the output of duplicity collection-status")
    blocks: list[tuple[bool, list[str]]] = []  # (primary, the chain's lines)
    orphaned = incomplete = 0
    for line in (raw.strip() for raw in output.splitlines()):
        if _CHAIN_START.match(line):
            blocks.append((line.startswith("Found primary"), []))
        elif match := _ORPHANED.match(line):
            orphaned = int(match[1])
        elif match := _INCOMPLETE.match(line):
            incomplete = int(match[1])
        elif blocks:
            blocks[-1][1].append(line)
    chains = sorted((_chain(primary, lines) for primary, lines in blocks), key=lambda c: c.start)
    return CollectionStatus(tuple(chains), orphaned_sets=orphaned, incomplete_sets=incomplete)


def _chain(primary: bool, lines: list[str]) -> BackupChain:
    fields = dict(match.groups() for line in lines if (match := _FIELD.match(line)))
    sets = tuple(
        BackupSet(
            kind="full" if match[1] == "Full" else "incremental",
            time=_asctime(match[2]),
            volumes=int(match[3]),
        )
        for line in lines
        if (match := _SET.match(line))
    )
    try:
        chain = BackupChain(
            primary, _asctime(fields["Chain start time"]), _asctime(fields["Chain end time"]), sets
        )
        counts = (
            int(fields["Number of contained backup sets"]),
            int(fields["Total number of contained volumes"]),
        )
    except KeyError as missing:
        raise ValueError(f"collection-status: a chain without {missing}") from None
    rows = len(sets) if chain.has_full else len(sets) + 1  # the full's row may be missing
    if counts != (rows, chain.volumes):
        raise ValueError(f"collection-status: a chain's rows disagree with its counts: {lines}")
    return chain


def _asctime(text: str) -> datetime:
    """`Sun Nov  2 03:53:18 2026` (duplicity's time.asctime, in UTC) as an aware datetime."""
    return datetime.strptime(text, "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)

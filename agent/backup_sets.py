"""A host's sets as the names of the files in its folder on the volume say: nothing is
decrypted, so no passphrase is needed and the host may be down.

A set is complete once its manifest is there (duplicity writes it last); what a killed run
left is incomplete. duplicity 3.2.1's collection-status lists such a set in its chain like
any other, so its newest set may be one that restores nothing. Chains are linked as duplicity
links them: a full starts one, an incremental extends the chain whose complete set ends where
it starts; one that extends nothing is orphaned.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.screening import NAMES

VOLUME = re.compile(r"\.vol[1-9]\d*\.difftar\.gpg$")


@dataclass(frozen=True)
class StoredFile:
    """A file of the host's folder: its bytes, and whether root owns it (sealed)."""

    size: int
    sealed: bool


def stored_files(folder: os.PathLike[str]) -> dict[str, StoredFile]:
    """The regular files of `folder` (none yet: no folder); one removed meanwhile is left out."""
    files = {}
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return {}
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode):
            files[entry.name] = StoredFile(info.st_size, info.st_uid == 0)
    return files


def chains_of(files: Mapping[str, StoredFile]) -> dict[str, list[dict[str, Any]]]:
    """The chains and orphaned sets that duplicity's names among `files` make (others are
    not duplicity's and are left out); times as `--time` takes them."""
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for name in files:
        if found := NAMES.fullmatch(name):
            grouped.setdefault(_set_key(found), []).append(name)
    chains: list[dict[str, Any]] = []
    orphaned: list[dict[str, Any]] = []
    ending: dict[str, dict[str, Any]] = {}  # a complete set's time -> its chain
    for (start, time, kind), names in sorted(grouped.items()):  # a full before what extends it
        entry = _set(kind, time, names, files)
        if kind == "full":
            chain = {"start": entry["time"], "end": None, "sets": []}
            chains.append(chain)
        elif (chain := ending.get(start)) is None:
            orphaned.append(entry)
            continue
        chain["sets"].append(entry)
        if entry["complete"]:
            chain["end"] = entry["time"]
            ending[time] = chain
    return {"chains": chains, "orphaned": orphaned}


def latest_time(files: Mapping[str, StoredFile]) -> str | None:
    """The time of the newest complete set among `files`: what duplicity's "latest" means
    now. A restore pins it, so that a backup ending meanwhile cannot lend it a newer set's
    parts (its metadata record, restored on its own, above all)."""
    sets = (entry for chain in chains_of(files)["chains"] for entry in chain["sets"])
    return max((entry["time"] for entry in sets if entry["complete"]), default=None)


def _set_key(found: re.Match[str]) -> tuple[str, str, str]:
    """(start, time, type) of the set a file is of: a full starts at its own time."""
    if full := found["time"] or found["sigtime"]:
        return full, full, "full"
    return found["start"] or found["sigstart"], found["end"] or found["sigend"], "incremental"


def _set(kind: str, time: str, names: list[str], files: Mapping[str, StoredFile]) -> dict[str, Any]:
    return {
        "type": kind,
        "time": iso_time(time),
        "volumes": sum(1 for name in names if VOLUME.search(name)),
        "bytes": sum(files[name].size for name in names),
        "complete": any(name.endswith(".manifest.gpg") for name in names),
        "sealed": all(files[name].sealed for name in names),
    }


def iso_time(stamp: str) -> str:
    """`2026-12-02T20:17:16Z` from a file name's `20261202T201716Z` (the same moment, UTC)."""
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:11]}:{stamp[11:13]}:{stamp[13:]}"

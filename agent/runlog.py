"""What each run leaves on the server: `log_dir/HOST/YYYYmmddTHHMMSSZ.log` (0600, duplicity's
output, never a secret) and the host's last outcome `state_dir/status/HOST.json` (atomic)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from agent.files import write_atomic
from agent.paths import ServerPaths


@dataclass(frozen=True)
class RunRecord:
    """One run of one host: times are ISO 8601 UTC; `error` is one line (None when ok)."""

    host: str
    start: str
    end: str
    duration: float  # seconds
    action: str | None  # full, incremental; None when no set was started
    result: str  # ok, failed
    error: str | None
    log: str | None
    hooks: list[dict[str, Any]] = field(default_factory=list)  # each hook step's outcome
    quarantined: list[str] = field(default_factory=list)  # files moved out of its history


def stamp(moment: datetime) -> str:
    """`2026-11-22T03:53:18Z` for an aware datetime."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def open_log(paths: ServerPaths, host: str, start: datetime, kind: str = "") -> IO[str]:
    """A new log file for this run of `host` (`kind`: of a drill...), readable by root only."""
    directory = paths.log_dir / host
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    file = directory / f"{start:%Y%m%dT%H%M%SZ}{f'.{kind}' if kind else ''}.log"
    return open(file, "a", buffering=1, opener=lambda name, flags: os.open(name, flags, 0o600))


def status_file(paths: ServerPaths, host: str) -> Path:
    return paths.state_dir / "status" / f"{host}.json"


@dataclass(frozen=True)
class DrillRecord:
    """One restore drill of one host (agent/actions/drill.py): files of its latest set
    restored here and compared with the host's own where unchanged since the backup."""

    host: str
    start: str
    duration: float  # seconds
    set_time: str | None  # the set drilled
    result: str  # pass, fail
    files_in_set: int
    files_on_host: int | None  # what duplicity would back up now (None: not counted)
    sampled: int  # files restored
    compared: int  # of those, hashed against the host's (unchanged since the backup)
    changed: int  # of those, changed or gone on the host since: not compared
    failures: list[str] = field(default_factory=list)  # "PATH: why" (or why the drill failed)
    log: str | None = None


def write_status(paths: ServerPaths, record: RunRecord) -> None:
    """The host's last run; when it went well, also its last success (staleness, metrics)."""
    text = json.dumps(asdict(record), indent=2) + "\n"
    write_atomic(status_file(paths, record.host), text)
    if record.result == "ok":
        write_atomic(_sibling(paths, record.host, "success"), text)


def read_status(paths: ServerPaths, host: str) -> dict[str, Any] | None:
    """The last run of `host` as written by write_status (None: it never ran)."""
    return _read(status_file(paths, host))


def read_last_success(paths: ServerPaths, host: str) -> dict[str, Any] | None:
    """The last run of `host` that went well (None: none yet). Before this record existed
    (an older release) the last run is it, if it went well."""
    found = _read(_sibling(paths, host, "success"))
    if found is None and (last := read_status(paths, host)) and last["result"] == "ok":
        return last
    return found


def write_drill(paths: ServerPaths, record: DrillRecord) -> None:
    write_atomic(_sibling(paths, record.host, "drill"), json.dumps(asdict(record), indent=2) + "\n")


def read_drill(paths: ServerPaths, host: str) -> dict[str, Any] | None:
    """The last drill of `host` (None: never drilled)."""
    return _read(_sibling(paths, host, "drill"))


def _sibling(paths: ServerPaths, host: str, kind: str) -> Path:
    return status_file(paths, host).with_name(f"{host}.{kind}.json")


def _read(file: Path) -> dict[str, Any] | None:
    try:
        return json.loads(file.read_text())
    except FileNotFoundError:
        return None

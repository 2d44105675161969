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


def open_log(paths: ServerPaths, host: str, start: datetime) -> IO[str]:
    """A new log file for this run of `host`, readable by root only."""
    directory = paths.log_dir / host
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    file = directory / f"{start:%Y%m%dT%H%M%SZ}.log"
    return open(file, "a", buffering=1, opener=lambda name, flags: os.open(name, flags, 0o600))


def status_file(paths: ServerPaths, host: str) -> Path:
    return paths.state_dir / "status" / f"{host}.json"


def write_status(paths: ServerPaths, record: RunRecord) -> None:
    write_atomic(status_file(paths, record.host), json.dumps(asdict(record), indent=2) + "\n")


def read_status(paths: ServerPaths, host: str) -> dict[str, Any] | None:
    """The last run of `host` as written by write_status (None: it never ran)."""
    try:
        return json.loads(status_file(paths, host).read_text())
    except FileNotFoundError:
        return None

"""duplicity list-current-files: what a backup holds, as of a time."""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from agent.duplicity.common import (
    DUPLICITY,
    Repository,
    repository_flags,
    time_flags,
    verbosity_flags,
)
from agent.duplicity.status import _asctime

_FILE = re.compile(r"^(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}) (.+)$")


def list_files_command(
    repository: Repository,
    *,
    time: datetime | str | None = None,
    log_file: str | None = None,
    verbosity: str | None = None,
    local_path: str = DUPLICITY,
) -> tuple[str, ...]:
    """One line per file, `asctime path` relative to the source root (latest, or at `time`);
    `log_file` gets the machine-readable form too (parse_file_log)."""
    return (
        local_path,
        "list-current-files",
        *repository_flags(repository),
        *time_flags(time),
        *(("--log-file", log_file) if log_file else ()),
        *verbosity_flags(verbosity),
        repository.url,
    )


@dataclass(frozen=True)
class Entry:
    """A file of a set as duplicity logs it: the exact name, its mtime and type."""

    path: bytes  # absolute, as on the host
    mtime: datetime
    type: str  # reg, dir, sym, fifo, sock, chr, blk


_LOGGED = re.compile(r"^INFO 10 (\d{8}T\d{6}Z) ('.*') (\w+)$")


def parse_file_log(text: str, root: str = "/") -> list[Entry]:
    """Every file of a `--log-file` of list-current-files. duplicity logs each name
    unicode-escaped in quotes (util.escape), so names with newlines or any bytes come back
    exactly."""
    entries = []
    for line in text.splitlines():
        if match := _LOGGED.match(line):
            name = os.fsencode(codecs.decode(match[2][1:-1], "unicode-escape"))
            path = os.path.normpath(os.path.join(os.fsencode(root), name))
            moment = datetime.strptime(match[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            entries.append(Entry(path, moment, match[3]))
    return entries


def parse_file_list(output: str, root: str = "/") -> list[tuple[str, datetime]]:
    """(absolute path, modification time) of each file `list-current-files` printed (run with
    common.environment(): times are UTC); other lines (notices) are skipped."""
    return [
        (str(PurePosixPath(root) / match[2]), _asctime(match[1]))
        for line in output.splitlines()
        if (match := _FILE.match(line))
    ]

"""duplicity list-current-files: what a backup holds, as of a time."""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.duplicity.common import (
    DUPLICITY,
    Repository,
    repository_flags,
    time_flags,
    verbosity_flags,
)


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


_LINE_START = re.compile(rb"^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} ")
_DONE = b"Duplicity backup complete."


def parse_listing(stdout: bytes, log: str, root: str = "/") -> list[Entry]:
    """Every file of a list-current-files run: its --log-file and its stdout (printed with
    PYTHONIOENCODING surrogateescape, common.STABLE_OUTPUT_ENV).

    duplicity's log file names each file exactly, except those whose name is not UTF-8: its
    logging cannot encode them, so they are missing there. Its stdout prints every name raw,
    `asctime NAME` one after another, where a newline in a name is ambiguous. Both list the
    files in the same order, so stdout is read along the log: a logged entry is matched byte
    for byte; the rest, between two logged ones, are the unlogged names, each holding bytes
    that are not UTF-8 (a piece that does not, cut at a line that looked like a new entry,
    belongs to the name before it)."""
    logged = parse_file_log(log, root)
    base = os.fsencode(root)
    lines = stdout.split(b"\n")
    while lines and lines[-1] in (b"", _DONE):
        lines.pop()
    entries: list[Entry] = []
    unlogged = False  # whether the last entry is one of the unlogged
    index = expected = 0
    while index < len(lines):
        if expected < len(logged):
            printed = _printed(logged[expected], base)
            count = printed.count(b"\n") + 1
            if b"\n".join(lines[index : index + count]) == printed:
                entries.append(logged[expected])
                expected, index, unlogged = expected + 1, index + count, False
                continue
        line = lines[index]
        index += 1
        if not _LINE_START.match(line):
            continue  # a notice before the listing
        block = [line]
        while index < len(lines) and not _LINE_START.match(lines[index]):
            block.append(lines[index])
            index += 1
        name = b"\n".join(block)[25:]
        if not _is_utf8(name):
            moment = datetime.strptime(line[:24].decode(), "%a %b %d %H:%M:%S %Y")
            path = os.path.normpath(os.path.join(base, name))
            entries.append(Entry(path, moment.replace(tzinfo=UTC), ""))
            unlogged = True
        elif unlogged:
            last = entries.pop()
            entries.append(Entry(last.path + b"\n" + b"\n".join(block), last.mtime, last.type))
    return entries


def _printed(entry: Entry, base: bytes) -> bytes:
    """How stdout shows a logged entry: asctime (UTC) and the name relative to the root."""
    moment = entry.mtime
    relative = os.path.relpath(entry.path, base) if entry.path != base else b"."
    return f"{moment:%a %b} {moment.day:2d} {moment:%H:%M:%S %Y} ".encode() + relative


def _is_utf8(name: bytes) -> bool:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

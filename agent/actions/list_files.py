"""`dupctl list HOST`: the files in a host's backup at a time, read on this server."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from agent.duplicity.list_files import Entry, list_files_command, parse_listing
from agent.host import open_host
from agent.paths import ServerPaths
from agent.times import check_time


def list_files(paths: ServerPaths, name: str, time: str | None) -> list[Entry]:
    """Every file in `name`'s backup as of `time` (None: latest), each name exact (bytes):
    duplicity's log file read along its printed lines (parse_listing)."""
    time = check_time(time)
    sets = open_host(paths, name)
    with tempfile.TemporaryDirectory(prefix="dupstack-list-") as scratch:
        log = Path(scratch) / "files.log"
        printed = sets.run_here(list_files_command(sets.here, time=time, log_file=str(log)))
        return parse_listing(os.fsencode(printed), log.read_text(errors="surrogateescape"))

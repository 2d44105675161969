"""`dupctl list HOST`: the files in a host's backup at a time, read on this server."""

from __future__ import annotations

from datetime import datetime

from agent.duplicity.list_files import list_files_command, parse_file_list
from agent.host import open_host
from agent.paths import ServerPaths
from agent.times import check_time


def list_files(paths: ServerPaths, name: str, time: str | None) -> list[tuple[str, datetime]]:
    """(absolute path, mtime) of every file in `name`'s backup as of `time` (None: latest)."""
    time = check_time(time)
    sets = open_host(paths, name)
    return parse_file_list(sets.run_here(list_files_command(sets.here, time=time)))

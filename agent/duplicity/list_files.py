"""duplicity list-current-files: what a backup holds, as of a time."""

from __future__ import annotations

import re
from datetime import datetime
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
    verbosity: str | None = None,
    local_path: str = DUPLICITY,
) -> tuple[str, ...]:
    """One line per file, `asctime path` relative to the source root (latest, or at `time`)."""
    return (
        local_path,
        "list-current-files",
        *repository_flags(repository),
        *time_flags(time),
        *verbosity_flags(verbosity),
        repository.url,
    )


def parse_file_list(output: str, root: str = "/") -> list[tuple[str, datetime]]:
    """(absolute path, modification time) of each file `list-current-files` printed (run with
    common.environment(): times are UTC); other lines (notices) are skipped."""
    return [
        (str(PurePosixPath(root) / match[2]), _asctime(match[1]))
        for line in output.splitlines()
        if (match := _FILE.match(line))
    ]

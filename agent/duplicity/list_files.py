"""duplicity list-current-files: what a backup holds, as of a time."""

from __future__ import annotations

from datetime import datetime

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

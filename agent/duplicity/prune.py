"""duplicity remove-all-but-n-full, remove-older-than, cleanup: retention, always --force.

Without --force duplicity only lists what it would delete.
"""

from __future__ import annotations

from datetime import datetime

from agent.duplicity.common import (
    DUPLICITY,
    Repository,
    duplicity_time,
    repository_flags,
    verbosity_flags,
)


def remove_all_but_n_full_command(
    repository: Repository,
    count: int,
    *,
    verbosity: str | None = None,
    local_path: str = DUPLICITY,
) -> tuple[str, ...]:
    """Delete every chain but the `count` newest full ones (with their incrementals)."""
    if count < 1:
        raise ValueError(f"keep at least one full backup, not {count}")
    return (
        local_path,
        "remove-all-but-n-full",
        str(count),
        "--force",
        *repository_flags(repository),
        *verbosity_flags(verbosity),
        repository.url,
    )


def remove_older_than_command(
    repository: Repository,
    time: datetime | str,
    *,
    verbosity: str | None = None,
    local_path: str = DUPLICITY,
) -> tuple[str, ...]:
    """Delete the chains whose every set is older than `time` (6M, a date...); duplicity
    keeps a chain that later sets still depend on."""
    return (
        local_path,
        "remove-older-than",
        duplicity_time(time),
        "--force",
        *repository_flags(repository),
        *verbosity_flags(verbosity),
        repository.url,
    )


def cleanup_command(
    repository: Repository,
    *,
    verbosity: str | None = None,
    local_path: str = DUPLICITY,
) -> tuple[str, ...]:
    """Delete what failed runs left behind (incomplete or orphaned sets)."""
    return (
        local_path,
        "cleanup",
        "--force",
        *repository_flags(repository),
        *verbosity_flags(verbosity),
        repository.url,
    )

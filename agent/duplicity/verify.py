"""duplicity verify: check a backup's archives, and optionally compare it with the files."""

from __future__ import annotations

from datetime import datetime

from agent.duplicity.common import (
    DUPLICITY,
    Repository,
    Selection,
    repository_flags,
    selection_flags,
    time_flags,
    verbosity_flags,
)


def verify_command(
    repository: Repository,
    selection: Selection,
    *,
    compare_data: bool = False,
    time: datetime | str | None = None,
    verbosity: str | None = None,
    local_path: str = DUPLICITY,
) -> tuple[str, ...]:
    """Without `compare_data`, duplicity only checks that the archives are intact and match
    their manifests (exit 0 even if the files changed since); with it, it also compares
    metadata and content with the files under the selection and exits 1 on a difference."""
    return (
        local_path,
        "verify",
        *repository_flags(repository),
        *(("--compare-data",) if compare_data else ()),
        *time_flags(time),
        *verbosity_flags(verbosity),
        *selection_flags(selection),
        repository.url,
        selection.root,
    )

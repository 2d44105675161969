"""duplicity backup / full: one backup set of a host's selection."""

from __future__ import annotations

from agent.duplicity.common import (
    DUPLICITY,
    Repository,
    Selection,
    repository_flags,
    selection_flags,
    verbosity_flags,
)


def backup_command(
    repository: Repository,
    selection: Selection,
    *,
    full: bool = False,
    full_if_older_than: str | None = None,
    volsize: int | None = None,
    retry_delay: int | None = None,
    statistics: bool = True,
    dry_run: bool = False,
    verbosity: str | None = None,
    local_path: str = DUPLICITY,
) -> tuple[str, ...]:
    """`duplicity full` when `full`, else `duplicity backup`: incremental, or full when the
    repository has none yet or its last full is older than `full_if_older_than` (7D...).
    `retry_delay`: seconds between duplicity's 5 attempts of a failed transfer (default 30).
    `dry_run`: an incremental that writes nothing, for its statistics (SourceFiles)."""
    if full and full_if_older_than is not None:
        raise ValueError("full_if_older_than only applies to an automatic backup")
    return (
        local_path,
        "full" if full else "incremental" if dry_run else "backup",
        *(("--dry-run",) if dry_run else ()),
        *repository_flags(repository),
        *(("--full-if-older-than", full_if_older_than) if full_if_older_than else ()),
        *(("--volsize", str(volsize)) if volsize is not None else ()),
        *(("--backend-retry-delay", str(retry_delay)) if retry_delay is not None else ()),
        *(() if statistics else ("--no-print-statistics",)),
        *verbosity_flags(verbosity),
        *selection_flags(selection),
        selection.root,
        repository.url,
    )

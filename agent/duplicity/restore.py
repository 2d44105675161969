"""duplicity restore: a whole backup, or one path of it, as of a time."""

from __future__ import annotations

from datetime import datetime

from agent.duplicity.common import (
    DUPLICITY,
    Repository,
    relative_path,
    repository_flags,
    time_flags,
    verbosity_flags,
)


def restore_command(
    repository: Repository,
    target: str,
    *,
    path: str | None = None,
    root: str = "/",
    time: datetime | str | None = None,
    filelist: str | None = None,
    verbosity: str | None = None,
    local_path: str = DUPLICITY,
) -> tuple[str, ...]:
    """Restore into `target`, which must not exist or be empty: duplicity 3.2.1 refuses
    anything else (exit 11) even with --force, which it only honours for deletions.

    `path` (absolute, under the backup's source `root`) restores only that file or folder;
    `filelist` only the files a file names (NUL-separated, relative to `root`).
    """
    restored = relative_path(path, root) if path is not None else "."
    return (
        local_path,
        "restore",
        # owners by number, as the host had them: by name they go to whoever has that name
        # where the restore runs (or to root, on a server without that user)
        "--numeric-owner",
        *repository_flags(repository),
        # one word: a path starting with "-" would be taken for an option
        *((f"--path-to-restore={restored}",) if restored != "." else ()),
        *time_flags(time),
        *(
            ("--null-separator", "--include-filelist", filelist, "--exclude", "**")
            if filelist
            else ()
        ),
        *verbosity_flags(verbosity),
        repository.url,
        target,
    )

"""Where a restore lands, here or on a host, for every restore (from the volume, from
offsite): what was asked checked first; nothing ever overwritten (a path in place must be
missing, a folder missing or empty); the files restored into a root-only folder beside the
target, their metadata record re-applied there (nobody but root reaches them before), then
renamed into place, so that a restore cut off leaves nothing at the target.
"""

from __future__ import annotations

import secrets
from pathlib import PurePosixPath

from agent.errors import TargetNotEmpty, UsageError
from agent.execute import Runner
from agent.files import is_utf8
from agent.metadata import shown

# `sh -c FREE sh PATH [empty-ok]`: exit 0 if PATH is missing (or, with a 2nd word, an empty
# folder), 1 if anything is there, even a dangling link.
FREE = (
    '{ [ -n "$2" ] && [ -d "$1" ] && [ -z "$(ls -A -- "$1")" ]; } '
    '|| ! { [ -e "$1" ] || [ -L "$1" ]; }'
)
# python3 -c MOVE FROM TO, here or on the host: what landed in the scratch folder moved to
# its name (which need not be UTF-8), its parents made (an empty folder TO is replaced).
MOVE = (
    "import os, sys; os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True); "
    "os.rename(sys.argv[1], sys.argv[2])"
)


def checked_request(path: str | None, to: str | None, to_host: bool) -> str | None:
    """UsageError unless `path` (None: everything), `to` and `to_host` say a restore that
    can be made; the path, normalized."""
    if path is not None:
        if not path.startswith("/"):
            raise UsageError(f"--path must be absolute, as on the host: {shown(path)!r}")
        path = str(PurePosixPath(path))
    if to is None and not to_host:
        raise UsageError("say where to restore: --to DIR (on this server) or --to-host")
    if to_host and not (to or path):
        raise UsageError("restoring everything in place is refused", hint="add --to DIR")
    if to is not None and not to.startswith("/"):
        raise UsageError(f"--to must be an absolute path: {shown(to)!r}")
    return path


def check_free(
    runner: Runner,
    place: str,
    empty_ok: bool,
    where: str,
    hint: str = "restore into a new or empty folder with --to DIR, or move it away",
) -> None:
    """TargetNotEmpty unless `place` is missing (or, `empty_ok`, an empty folder) where
    `runner` runs."""
    argv = ("sh", "-c", FREE, "sh", place, *(("empty-ok",) if empty_ok else ()))
    if runner.run(argv, ok_codes=(0, 1)).exit_code:
        raise TargetNotEmpty(
            f"{shown(place)} exists{' and is not empty' if empty_ok else ''} {where}: "
            "restore never overwrites",
            hint=hint,
        )


def scratch_beside(target: str) -> str:
    """A new folder's name beside the target, in its nearest ancestor whose name is UTF-8
    (duplicity fails on a target that is not), renamed to the target once complete."""
    base = PurePosixPath(target).parent
    while not is_utf8(str(base)):
        base = base.parent
    return str(base / f".dupstack-restore-{secrets.token_hex(6)}")


def exists(runner: Runner, place: str) -> bool:
    """Whether `place` exists where `runner` runs (a dangling link too): FREE says not."""
    return runner.run(("sh", "-c", FREE, "sh", place), ok_codes=(0, 1)).exit_code == 1


def move(runner: Runner, source: str, target: str) -> None:
    """`source` renamed to `target` where `runner` runs (MOVE)."""
    runner.run(("python3", "-c", MOVE, source, target))

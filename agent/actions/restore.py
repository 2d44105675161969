"""`dupctl restore HOST`: files of a host's backup, into a folder here or back onto the host.

Here, duplicity reads the sets on the volume (file://). With `to_host`, the host's own
duplicity fetches them from its chroot over SFTP, the passphrase on stdin. Nothing is ever
overwritten: a target folder must be missing or empty, a path restored in place missing.
Owners come back by number (the uid and gid the host had), and then what duplicity does not
keep is re-applied from the set's metadata record (agent/metadata.py): what cannot be is
named, each path, and the restore exits RestoreIncomplete.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
from collections.abc import Callable
from pathlib import PurePosixPath

from agent import execute, reapply, remote
from agent.backup_sets import latest_time, stored_files
from agent.duplicity.common import relative_path
from agent.duplicity.restore import restore_command
from agent.errors import TargetNotEmpty, UsageError
from agent.execute import ANY_EXIT, Runner
from agent.host import open_host
from agent.metadata import shown
from agent.paths import ServerPaths
from agent.times import check_time

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


def restore(
    paths: ServerPaths,
    ssh: remote.Ssh,
    name: str,
    *,
    path: str | None,
    time: str | None,
    to: str | None,
    to_host: bool,
    say: Callable[[str], None],
) -> None:
    """Restore `path` (absolute, as on the host; None: everything) of `name` as of `time`
    into folder `to` (below it, the path as on the host), or in place on the host.

    It lands in a root-only folder beside the target (a restore cut off leaves nothing at
    the target, and nobody but root reaches the files before their record is re-applied),
    is completed there, and renamed into place."""
    time = check_time(time)
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
    sets = open_host(paths, name)
    folder = to or "/"
    target = str(PurePosixPath(folder) / relative_path(path)) if path else folder
    checked = ("sh", "-c", FREE, "sh", *((folder, "empty-ok") if to else (target,)))
    final = ("sh", "-c", FREE, "sh", target, *(("empty-ok",) if target == folder else ()))
    where = f"on {name}" if to_host else "on this server"
    refused = TargetNotEmpty(
        f"{shown(checked[4])} exists{' and is not empty' if to else ''} {where}: "
        "restore never overwrites",
        hint=f"restore into a new or empty folder with --to DIR, or move {shown(checked[4])} "
        "away"
        + (f" (or use --to-host --to DIR to restore beside it on {name})" if to is None else ""),
    )
    when = f"as of {time}" if time else "latest"
    what = f"{shown(path) if path else 'everything'} of {name} ({when})"
    time = time or latest_time(stored_files(sets.folder))  # the same set for files and record
    scratch = _scratch(target)
    landing, tree = f"{scratch}/landing", f"{scratch}/tree"
    placed = f"{tree}/{relative_path(path)}" if path else tree
    argv = restore_command(sets.on_host if to_host else sets.here, landing, path=path, time=time)
    within = relative_path(path) if path else ""
    runner: Runner
    with contextlib.ExitStack() as stack:
        if to_host:
            host = stack.enter_context(remote.session(ssh, sets.host))
            sets.private_caches(host)
            runner = host
        else:
            runner = execute.LOCAL
        if runner.run(checked, ok_codes=(0, 1)).exit_code:
            raise refused
        runner.run(("mkdir", "-p", "--", os.path.dirname(scratch)))
        runner.run(("mkdir", "-m", "0700", "--", scratch))
        try:
            if to_host:
                sets.check(host.run(argv, secret=sets.passphrase, ok_codes=ANY_EXIT, stable=True))
            else:
                sets.run_here(argv)
            runner.run(("python3", "-c", MOVE, landing, placed))
            if to_host:
                report = reapply.on_host(sets, host, tree, within, time)
            else:
                report = reapply.here(sets, sets.here, tree, within, time)
            if runner.run(final, ok_codes=(0, 1)).exit_code:  # appeared meanwhile
                raise refused
            runner.run(("python3", "-c", MOVE, placed, target))
            if not to_host:  # the host's owners and set-id files: nobody else's way in here
                os.chmod(folder, 0o700)
        finally:
            runner.run(("rm", "-rf", "--", scratch), ok_codes=ANY_EXIT)
    say(
        f"restored {what} to {shlex.quote(shown(target))} {where}"
        + ("" if to_host else f" ({shlex.quote(shown(folder))} is root's alone: 0700)")
    )
    reapply.told(report, what, where, say)


def _scratch(target: str) -> str:
    """A new folder beside the target, in its nearest ancestor whose name is UTF-8 (duplicity
    fails on a target that is not), renamed to the target once complete."""
    base = PurePosixPath(target).parent
    while not _utf8(str(base)):
        base = base.parent
    return str(base / f".dupstack-restore-{secrets.token_hex(6)}")


def _utf8(text: str) -> bool:
    """False for a name holding bytes that are not UTF-8 (surrogate escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

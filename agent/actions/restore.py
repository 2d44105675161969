"""`dupctl restore HOST`: files of a host's backup, into a folder here or back onto the host.

Here, duplicity reads the sets on the volume (file://). With `to_host`, the host's own
duplicity fetches them from its chroot over SFTP, the passphrase on stdin. Nothing is ever
overwritten: a target folder must be missing or empty, a path restored in place missing.
Owners come back by number (the uid and gid the host had), and then what duplicity does not
keep is re-applied from the set's metadata record (agent/metadata.py): what cannot be is
named, each path, and the restore exits RestoreIncomplete.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
from collections.abc import Callable
from pathlib import PurePosixPath

from agent import execute, reapply, remote
from agent.duplicity.common import relative_path
from agent.duplicity.restore import restore_command
from agent.errors import TargetNotEmpty, UsageError
from agent.execute import ANY_EXIT
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
# python3 -c MOVE FROM TO on the host: a restore that landed in a scratch folder moved to
# its name (which need not be UTF-8).
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
    into folder `to` (below it, the path as on the host), or in place on the host."""
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
    scratch = _scratch(target)
    landing = scratch or target
    argv = restore_command(sets.on_host if to_host else sets.here, landing, path=path, time=time)
    within = relative_path(path) if path else ""
    if not to_host:
        if execute.run(checked, ok_codes=(0, 1)).exit_code:
            raise refused
        try:
            if scratch:
                os.makedirs(os.path.dirname(scratch), exist_ok=True)
            sets.run_here(argv)
            if scratch:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.rename(scratch, target)
        finally:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
        report = reapply.here(sets, sets.here, folder, within, time)
    else:
        with remote.session(ssh, sets.host) as host:
            if host.run(checked, ok_codes=(0, 1)).exit_code:
                raise refused
            sets.private_caches(host)
            try:
                if scratch:
                    host.run(("mkdir", "-p", "--", os.path.dirname(scratch)))
                done = host.run(argv, secret=sets.passphrase, ok_codes=ANY_EXIT, stable=True)
                sets.check(done)
                if scratch:
                    host.run(("python3", "-c", MOVE, scratch, target))
            finally:
                if scratch:
                    host.run(("rm", "-rf", "--", scratch), ok_codes=ANY_EXIT)
            report = reapply.on_host(sets, host, folder, within, time)
    say(f"restored {what} to {shlex.quote(shown(target))} {where}")
    reapply.told(report, what, where, say)


def _scratch(target: str) -> str | None:
    """Where to restore a target whose name is not UTF-8 (duplicity fails on it): a new
    folder in its nearest ancestor that is, renamed to the target once complete."""
    if _utf8(target):
        return None
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

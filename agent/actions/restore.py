"""`dupctl restore HOST`: files of a host's backup, into a folder here or back onto the host.

Here, duplicity reads the sets on the volume (file://). With `to_host`, the host's own
duplicity fetches them from its chroot over SFTP, the passphrase on stdin. Nothing is ever
overwritten: a target folder must be missing or empty, a path restored in place missing.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import PurePosixPath

from agent import execute, remote
from agent.duplicity.common import relative_path
from agent.duplicity.restore import restore_command
from agent.errors import TargetNotEmpty, UsageError
from agent.execute import ANY_EXIT
from agent.host import open_host
from agent.paths import ServerPaths
from agent.times import check_time

# `sh -c FREE sh PATH [empty-ok]`: exit 0 if PATH is missing (or, with a 2nd word, an empty
# folder), 1 if anything is there, even a dangling link.
FREE = (
    '{ [ -n "$2" ] && [ -d "$1" ] && [ -z "$(ls -A -- "$1")" ]; } '
    '|| ! { [ -e "$1" ] || [ -L "$1" ]; }'
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
            raise UsageError(f"--path must be absolute, as on the host: {path!r}")
        path = str(PurePosixPath(path))
    if to is None and not to_host:
        raise UsageError("say where to restore: --to DIR (on this server) or --to-host")
    if to_host and not (to or path):
        raise UsageError("restoring everything in place is refused", hint="add --to DIR")
    if to is not None and not to.startswith("/"):
        raise UsageError(f"--to must be an absolute path: {to!r}")
    sets = open_host(paths, name)
    folder = to or "/"
    target = str(PurePosixPath(folder) / relative_path(path)) if path else folder
    checked = ("sh", "-c", FREE, "sh", *((folder, "empty-ok") if to else (target,)))
    where = f"on {name}" if to_host else "on this server"
    refused = TargetNotEmpty(
        f"{checked[4]} exists{' and is not empty' if to else ''} {where}: restore never overwrites",
        hint=f"restore into a new or empty folder with --to DIR, or move {checked[4]} away"
        + (f" (or use --to-host --to DIR to restore beside it on {name})" if to is None else ""),
    )
    what = f"{path or 'everything'} of {name} ({f'as of {time}' if time else 'latest'})"
    argv = restore_command(sets.on_host if to_host else sets.here, target, path=path, time=time)
    if not to_host:
        if execute.run(checked, ok_codes=(0, 1)).exit_code:
            raise refused
        sets.run_here(argv)
    else:
        with remote.session(ssh, sets.host) as host:
            if host.run(checked, ok_codes=(0, 1)).exit_code:
                raise refused
            sets.private_caches(host)
            done = host.run(argv, secret=sets.passphrase, ok_codes=ANY_EXIT, stable=True)
            sets.check(done)
    say(f"restored {what} to {shlex.quote(target)} {where}")

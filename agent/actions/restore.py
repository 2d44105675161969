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
import shlex
from collections.abc import Callable
from pathlib import PurePosixPath

from agent import execute, reapply, remote
from agent.backup_sets import latest_time, stored_files
from agent.config.load import METADATA_RECORD
from agent.duplicity.common import filelist, relative_path
from agent.duplicity.restore import restore_command
from agent.errors import NotInBackup, RemoteCommandFailed
from agent.execute import ANY_EXIT, Runner
from agent.host import open_host
from agent.landing import check_free, checked_request, exists, move, scratch_beside
from agent.metadata import shown
from agent.paths import ServerPaths
from agent.times import check_time


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
    path = checked_request(path, to, to_host)
    sets = open_host(paths, name)
    folder = to or "/"
    target = str(PurePosixPath(folder) / relative_path(path)) if path else folder
    where = f"on {name}" if to_host else "on this server"
    first = folder if to else target
    hint = f"restore into a new or empty folder with --to DIR, or move {shown(first)} away" + (
        f" (or use --to-host --to DIR to restore beside it on {name})" if to is None else ""
    )
    when = f"as of {time}" if time else "latest"
    what = f"{shown(path) if path else 'everything'} of {name} ({when})"
    time = time or latest_time(stored_files(sets.folder))  # the same set for files and record
    scratch = scratch_beside(target)
    within = relative_path(path) if path else ""
    landing, tree = f"{scratch}/landing", f"{scratch}/tree"
    placed = f"{tree}/{within}" if within else tree
    # One path: it and the set's record in one duplicity run (one start, one read of the
    # chain), both below `landing`. Everything: the record comes with the tree.
    listed = f"{scratch}/list"
    repository = sets.on_host if to_host else sets.here
    argv = restore_command(repository, landing, time=time, filelist=listed if path else None)
    record = relative_path(METADATA_RECORD)
    inside = within and (record == within or record.startswith(f"{within}/"))
    runner: Runner
    with contextlib.ExitStack() as stack:
        if to_host:
            host = stack.enter_context(remote.session(ssh, sets.host))
            sets.private_caches(host)
            runner = host
        else:
            runner = execute.LOCAL
        check_free(runner, first, bool(to), where, hint)
        runner.run(("mkdir", "-p", "--", os.path.dirname(scratch)))
        runner.run(("mkdir", "-m", "0700", "--", scratch))
        try:
            if path:
                lines = filelist(os.fsencode(name) for name in (within, record))
                runner.run(("sh", "-c", 'umask 077 && cat > "$1"', "sh", listed),
                           input=lines.decode())  # fmt: skip

            if to_host:  # both drop the cached manifests first (agent/host.py: READS)
                done = sets.run_on_host(host, argv)
                sets.check(done)
            else:
                sets.run_here(argv)
            if not exists(runner, f"{landing}/{within}" if path else landing):
                raise NotInBackup(
                    f"that path is not in {name}'s backup at that time ({shown(path)})"
                    if path
                    else f"{name}'s backup holds no files at that time",
                    hint=f"`dupctl list {name} [--time T]` shows what the backup holds",
                )
            if path:
                if not inside and exists(runner, f"{landing}/{record}"):
                    move(runner, f"{landing}/{record}", f"{scratch}/record")
                move(runner, f"{landing}/{within}", placed)
            else:
                move(runner, landing, placed)
            kept = (f"{tree}/{record}" if inside else f"{scratch}/record") if path else None
            if to_host:
                report = reapply.on_host(sets, host, tree, within, time, record=kept)
            else:
                report = reapply.here(sets, sets.here, tree, within, time, record=kept)
            check_free(runner, target, target == folder, where, hint)  # appeared meanwhile?
            move(runner, placed, target)
            if not to_host:  # the host's owners and set-id files: nobody else's way in here
                os.chmod(folder, 0o700)
        except BaseException:
            with contextlib.suppress(RemoteCommandFailed):  # a lost session: its error stands
                runner.run(("rm", "-rf", "--", scratch), ok_codes=ANY_EXIT)
            raise
        runner.run(("rm", "-rf", "--", scratch), ok_codes=ANY_EXIT)
    say(
        f"restored {what} to {shlex.quote(shown(target))} {where}"
        + ("" if to_host else f" ({shlex.quote(shown(folder))} is root's alone: 0700)")
    )
    reapply.told(report, what, where, say)

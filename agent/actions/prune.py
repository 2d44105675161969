"""`dupctl prune [HOST...]`: apply each host's retention to its sets on this server.

`remove-all-but-n-full keep_full`, then `remove-older-than` if set, then `cleanup`, all with
--force, under the host's lock (never while its backup runs). A host with files of an
unfinished run (still owned by its account) is skipped: duplicity's remove commands delete
incomplete sets too, and only the next backup can first make sure that no duplicity still
writes them on the host.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from agent import metrics
from agent.config.load import load_inventory
from agent.duplicity.prune import (
    cleanup_command,
    remove_all_but_n_full_command,
    remove_older_than_command,
)
from agent.errors import DupstackError, read_only_volume
from agent.host import open_host
from agent.locks import host_lock
from agent.paths import ServerPaths
from agent.repository import backups_dir
from agent.sealing import unsealed

# A set's files: duplicity-full.T.* or duplicity-inc.T1.to.T2.* (signatures go with them).
SET_FILE = re.compile(r"^duplicity-(full|inc)\.(\w+(?:\.to\.\w+)?)\.(?:manifest|vol\d+\.)")


def prune(paths: ServerPaths, names: Sequence[str], say: Callable[[str], None]) -> None:
    """Prune `names` (every host when empty); a host's failure does not stop the others."""
    inventory = load_inventory(paths)
    names = list(names) or sorted(inventory.hosts)
    for name in names:
        inventory.host(name)  # every name is checked before anything is deleted
    failed = 0
    for name in names:
        try:
            with host_lock(paths, name) as note:
                if note:
                    say(f"prune {name}: {note}")
                say(prune_host(paths, name))
        except DupstackError as error:
            if len(names) == 1:
                raise
            say(f"prune {name}: failed: {error.message}")
            failed += 1
    try:
        metrics.refresh(paths, inventory)  # sets and bytes changed
    except DupstackError as error:
        say(f"warning: {error.message}")
    if failed:
        raise DupstackError(f"prune failed for {failed} of {len(names)} hosts (see above)")


def prune_host(paths: ServerPaths, name: str) -> str:
    """Prune one host (its lock held); what was removed and what is kept, in one line."""
    sets = open_host(paths, name, need_backup=False)
    folder = backups_dir(paths, sets.host)
    if not sets.has_backup():
        return f"prune {name}: no backups yet"
    if sets.read_only():  # it could remove nothing, nor say what it would have
        raise read_only_volume(paths.mount_point)
    host = sets.host
    unfinished = unsealed(paths, host)
    if unfinished:
        return (
            f"prune {name}: skipped: {len(unfinished)} file(s) of an unfinished run; "
            f"`dupctl backup {name}` deals with them first"
        )
    before = set(folder.iterdir())
    if host.keep_full is not None:
        sets.run_here(remove_all_but_n_full_command(sets.here, host.keep_full))
    if host.remove_older_than is not None:
        sets.run_here(remove_older_than_command(sets.here, host.remove_older_than))
    sets.run_here(cleanup_command(sets.here))
    after = set(folder.iterdir())
    removed = sorted(_sets(before - after))
    shown = ", ".join(f"{'full' if kind == 'full' else 'incremental'} {at}" for kind, at in removed)
    return (
        f"prune {name}: removed {len(before - after)} file(s)"
        + (f" of {len(removed)} set(s): {shown}" if removed else "")
        + f"; {sum(kind == 'full' for kind, _ in _sets(after))} full backup(s) kept"
    )


def _sets(files: set[Path]) -> set[tuple[str, str]]:
    """(kind, time) of the sets these files belong to."""
    return {match.groups() for file in files if (match := SET_FILE.match(file.name))}

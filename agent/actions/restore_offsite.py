"""`dupctl restore HOST --from TARGET` and `dupctl list HOST --from TARGET`: a host's sets read
from an offsite copy instead of the volume, by stock duplicity (s3:// with the target's
credentials in its environment), onto this server.

Volumes in an archive class (GLACIER, DEEP_ARCHIVE) are thawed first, only those the path
at that time needs (agent/offsite/thaw.py): without `--thaw TIER` such a restore fails at
once, naming them with each tier's time, never in duplicity's retry loop.
"""

from __future__ import annotations

import shlex
import time as clock
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import PurePosixPath

from agent import execute
from agent.duplicity.common import Repository, backup_name, relative_path
from agent.duplicity.list_files import list_files_command, parse_file_list
from agent.duplicity.restore import restore_command
from agent.errors import TargetNotEmpty, ThawNeeded, UsageError
from agent.host import HostContext, open_host
from agent.offsite.push import open_store
from agent.offsite.s3 import S3Store
from agent.offsite.thaw import Ticket, poll, required_volumes, tiers_for
from agent.paths import ServerPaths
from agent.times import check_time

FREE = '[ -d "$1" ] && [ -z "$(ls -A -- "$1")" ] || ! { [ -e "$1" ] || [ -L "$1" ]; }'
Say = Callable[[str], None]


def list_offsite(
    paths: ServerPaths, name: str, target_name: str, time: str | None
) -> list[tuple[str, datetime]]:
    """The files of the host's copy on the target as of `time` (signatures only, which stay
    STANDARD: never a thaw)."""
    time = check_time(time)
    sets, store, repository = _open(paths, name, target_name)
    argv = list_files_command(repository, time=time)
    return parse_file_list(sets.run_here(argv, env=store.duplicity_env()))


def restore_offsite(
    paths: ServerPaths,
    name: str,
    target_name: str,
    *,
    path: str | None,
    time: str | None,
    to: str,
    thaw: str | None,
    days: int,
    wait: bool,
    say: Say,
) -> str:
    """Restore `path` (None: everything) of host `name` as of `time` from the target into
    folder `to` here, thawing what it needs; where it went."""
    time = check_time(time)
    if path is not None and not path.startswith("/"):
        raise UsageError(f"--path must be absolute, as on the host: {path!r}")
    if not to.startswith("/"):
        raise UsageError(f"--to must be an absolute path: {to!r}")
    sets, store, repository = _open(paths, name, target_name)
    env = store.duplicity_env()
    target = str(PurePosixPath(to) / relative_path(path)) if path else to
    if execute.run(("sh", "-c", FREE, "sh", to), ok_codes=(0, 1)).exit_code:
        raise TargetNotEmpty(f"{to} exists and is not empty: restore never overwrites",
                             hint="restore into a new or empty folder")  # fmt: skip
    what = f"{path or 'everything'} of {name} ({f'as of {time}' if time else 'latest'})"
    dry = ("duplicity", "--dry-run", *restore_command(repository, target, path=path, time=time)[1:])
    needed = required_volumes(sets.run_here(dry, env=env))
    say(f"{what} needs {len(needed)} volume(s) from {target_name}")
    _thaw(paths, sets, store, needed, thaw=thaw, days=days, wait=wait, say=say)
    argv = restore_command(repository, target, path=path, time=time)
    say(f"restoring from {target_name}: {shlex.join(argv[:2])} ...")
    sets.run_here(argv, env=env)
    say(f"restored {what} from {target_name} to {shlex.quote(target)} on this server")
    return target


def _open(
    paths: ServerPaths, name: str, target_name: str
) -> tuple[HostContext, S3Store, Repository]:
    sets = open_host(paths, name, need_backup=False)  # the volume's copy may be gone
    offsite = sets.inventory.target(target_name)
    store = open_store(paths, offsite)
    repository = Repository(
        url=store.duplicity_url(name),
        name=f"{backup_name(name)}-{offsite.name}",  # its own cache beside the volume's
        archive_dir=str(paths.cache_dir),
        s3_endpoint_url=offsite.endpoint_url,
        s3_region=offsite.region,
    )
    return sets, store, repository


def _thaw(
    paths: ServerPaths,
    sets: HostContext,
    store: S3Store,
    needed: list[str],
    *,
    thaw: str | None,
    days: int,
    wait: bool,
    say: Say,
) -> None:
    """Make every needed volume readable: ThawNeeded if any is archived and no tier was
    given (or, with wait=False, not readable yet)."""
    name, target = sets.name, store.target.name
    heads = {volume: store.head(name, volume) for volume in needed}
    archived = [volume for volume, head in heads.items() if not head.readable]
    if not archived:
        return
    classes = {volume: heads[volume].storage_class for volume in needed}
    size = sum(heads[volume].size for volume in archived)
    if thaw is None:
        tiers = {}
        for volume in archived:
            tiers.update(tiers_for(classes[volume]))
        choices = "; ".join(f"{tier}: {text}" for tier, (text, _) in tiers.items())
        raise ThawNeeded(
            f"{name}: {len(archived)} of {len(needed)} volumes needed from {target} are archived "
            f"({', '.join(sorted({classes[v] for v in archived}))}, {size >> 20} MiB): "
            + ", ".join(archived[:5])
            + (" ..." if len(archived) > 5 else ""),
            hint=f"add --thaw TIER to request only those ({choices}); cost: "
            f"`dupctl offsite plan {name}`",
        )
    refused = [v for v in archived if thaw not in tiers_for(classes[v])]
    if refused:
        raise UsageError(
            f"--thaw {thaw} is not offered for {classes[refused[0]]} ({refused[0]})",
            hint="tiers there: " + ", ".join(tiers_for(classes[refused[0]])),
        )
    ticket = Ticket.of(paths, name, target)
    moment = datetime.now(UTC)
    for volume in archived:
        if heads[volume].thaw is None and not ticket.still_valid(volume, days, moment):
            store.request_thaw(name, volume, thaw, days)
            ticket.note(volume, thaw, days, moment)
    say(f"thaw of {len(archived)} volume(s) ({size >> 20} MiB, {thaw}) requested; "
        f"ticket {ticket.file}")  # fmt: skip
    if not wait:
        eta = ticket.eta(archived, classes)
        raise ThawNeeded(
            f"{name}: {len(archived)} volume(s) from {target} are thawing"
            + (f", readable by about {eta:%Y-%m-%d %H:%M} UTC" if eta else ""),
            hint="run the same command again then (the ticket continues, nothing is asked "
            "twice), or without --no-wait to wait for them",
        )

    def still_archived() -> list[str]:
        return [volume for volume in archived if not store.head(name, volume).readable]

    poll(still_archived, say, clock.sleep)

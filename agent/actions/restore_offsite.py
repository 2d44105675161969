"""`dupctl restore HOST --from TARGET` and `dupctl list HOST --from TARGET`: a host's sets read
from an offsite copy instead of the volume, by stock duplicity onto this server: s3:// with
the target's credentials in its environment, swift:// with a token this agent got from
Keystone (duplicity's swift backend cannot use an application credential), fresh for each
duplicity run.

Volumes in an archive class (GLACIER, DEEP_ARCHIVE) are thawed first, only those the path
at that time needs (agent/offsite/thaw.py): without `--thaw TIER` such a restore fails at
once, naming them with each tier's time, never in duplicity's retry loop.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import time as clock
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

from agent import execute, reapply
from agent.config.load import METADATA_RECORD
from agent.duplicity.common import Repository, backup_name, relative_path
from agent.duplicity.list_files import Entry, list_files_command, parse_listing
from agent.duplicity.restore import restore_command
from agent.errors import NotInBackup, TargetNotEmpty, ThawNeeded, UsageError
from agent.host import HostContext, open_host
from agent.metadata import shown
from agent.offsite.prices import load_prices
from agent.offsite.push import Store, open_store
from agent.offsite.s3 import Head
from agent.offsite.thaw import Ticket, poll, required_volumes, tiers_for
from agent.paths import ServerPaths
from agent.times import check_time

FREE = '[ -d "$1" ] && [ -z "$(ls -A -- "$1")" ] || ! { [ -e "$1" ] || [ -L "$1" ]; }'
Say = Callable[[str], None]


def list_offsite(paths: ServerPaths, name: str, target_name: str, time: str | None) -> list[Entry]:
    """The files of the host's copy on the target as of `time` (signatures only, which stay
    STANDARD: never a thaw), each name exact (parse_listing)."""
    time = check_time(time)
    sets, store, repository = _open(paths, name, target_name)
    with tempfile.TemporaryDirectory(prefix="dupstack-list-") as scratch:
        log = Path(scratch) / "files.log"
        argv = list_files_command(repository, time=time, log_file=str(log))
        printed = sets.run_here(argv, env=store.duplicity_env())
        return parse_listing(os.fsencode(printed), log.read_text(errors="surrogateescape"))


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
    target = str(PurePosixPath(to) / relative_path(path)) if path else to
    if execute.run(("sh", "-c", FREE, "sh", to), ok_codes=(0, 1)).exit_code:
        raise TargetNotEmpty(f"{to} exists and is not empty: restore never overwrites",
                             hint="restore into a new or empty folder")  # fmt: skip
    parent = Path(to).parent
    if not parent.is_dir():
        raise UsageError(f"--to {to}: {parent} does not exist")
    when = f"as of {time}" if time else "latest"
    what = f"{shown(path) if path else 'everything'} of {name} ({when})"
    # duplicity's dry run makes the target's folders: into a scratch one, never at --to
    with tempfile.TemporaryDirectory(dir=parent, prefix=f".{Path(to).name}.planning-") as plan:
        needed = _needed(sets, store, repository, f"{plan}/landing", path, time)
        if path:  # and the volume of the set's metadata record, re-applied after
            record = _needed(sets, store, repository, f"{plan}/record", METADATA_RECORD, time)
            needed += [volume for volume in record if volume not in needed]
    say(f"{what} needs {len(needed)} volume(s) from {target_name}")
    _thaw(paths, sets, store, needed, thaw=thaw, days=days, wait=wait, say=say)
    # into a hidden sibling first: a restore cut off half-way leaves nothing at --to
    scratch = Path(tempfile.mkdtemp(dir=parent, prefix=f".{Path(to).name}.restoring-"))
    try:
        # duplicity fails on a target whose name is not UTF-8: it lands in a plain one, moved
        inside, landing = scratch / "to", scratch / "landing"
        argv = restore_command(repository, str(landing), path=path, time=time)
        say(f"restoring from {target_name} ...")
        sets.run_here(argv, env=store.duplicity_env())
        placed = inside / relative_path(path) if path else inside
        placed.parent.mkdir(parents=True, exist_ok=True)
        landing.rename(placed)
        if Path(to).is_dir():
            Path(to).rmdir()  # empty, as checked
        inside.rename(to)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    within = relative_path(path) if path else ""
    report = reapply.here(sets, repository, to, within, time, env=store.duplicity_env())
    say(f"restored {what} from {target_name} to {shlex.quote(shown(target))} on this server")
    reapply.told(report, what, "on this server", say)
    return target


def _needed(
    sets: HostContext,
    store: Store,
    repository: Repository,
    where: str,
    path: str | None,
    time: str | None,
) -> list[str]:
    """The volumes a restore of `path` at `time` reads (duplicity's dry run), none if the
    path is not in that set."""
    dry = ("duplicity", "--dry-run", *restore_command(repository, where, path=path, time=time)[1:])
    try:
        return required_volumes(sets.run_here(dry, env=store.duplicity_env()))
    except NotInBackup:
        if path == METADATA_RECORD:
            return []  # a set from before the record: the restore says so
        raise


def _open(paths: ServerPaths, name: str, target_name: str) -> tuple[HostContext, Store, Repository]:
    sets = open_host(paths, name, need_backup=False)  # the volume's copy may be gone
    offsite = sets.inventory.target(target_name)
    store = open_store(paths, offsite)
    if not store.listing(name):  # reaches it (typed errors, short timeouts) before duplicity
        raise NotInBackup(
            f"{offsite.name} holds no copy of {name} ({store.duplicity_url(name)})",
            hint=f"push it with `dupctl offsite push {name} --target {offsite.name}`",
        )
    repository = Repository(
        url=store.duplicity_url(name),
        name=f"{backup_name(name)}-{offsite.name}",  # its own cache beside the volume's
        archive_dir=str(paths.cache_dir),
        s3_endpoint_url=offsite.endpoint_url,
        s3_region=offsite.region,
        num_retries=2,  # not 5 x 30 s: the target was reached just before
    )
    return sets, store, repository


def _thaw(
    paths: ServerPaths,
    sets: HostContext,
    store: Store,
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
        tiers: dict[str, tuple[str, timedelta]] = {}
        for volume in archived:
            tiers.update(tiers_for(classes[volume]))
        costs = _costs(archived, classes, heads)
        choices = "; ".join(f"{tier}: {text}, about ${costs.get(tier, 0):.2f}"
                            for tier, (text, _) in tiers.items())  # fmt: skip
        shown = ", ".join(archived[:10]) + (
            f" and {len(archived) - 10} more" if len(archived) > 10 else ""
        )
        raise ThawNeeded(
            f"{name}: {len(archived)} of {len(needed)} volumes needed from {target} are archived "
            f"({', '.join(sorted({classes[v] for v in archived}))}, {size >> 20} MiB): {shown}",
            hint=f"add --thaw TIER to request only those ({choices})",
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
        if heads[volume].thaw is None:  # never asked, or its readable copy expired
            store.request_thaw(name, volume, thaw, days)
            ticket.note(volume, thaw, days, moment)
    say(f"thaw of {len(archived)} volume(s) ({size >> 20} MiB, {thaw}) requested; "
        f"ticket {ticket.file}")  # fmt: skip
    eta = ticket.eta(archived, classes) or moment
    if not wait:
        raise ThawNeeded(
            f"{name}: {len(archived)} volume(s) from {target} are thawing, readable by about "
            f"{eta:%Y-%m-%d %H:%M} UTC",
            hint="run the same command again then (the ticket continues, nothing is asked "
            "twice), or without --no-wait to wait for them",
        )
    give_up = eta + timedelta(days=1)

    def still_archived() -> list[str]:
        waiting = []
        for volume in archived:
            head = store.head(name, volume)
            if head.thaw is None:  # expired before the others were ready: asked again
                store.request_thaw(name, volume, thaw, days)
                ticket.note(volume, thaw, days, datetime.now(UTC))
            if not head.readable:
                waiting.append(volume)
        if waiting and datetime.now(UTC) > give_up:
            raise ThawNeeded(
                f"{name}: {len(waiting)} volume(s) from {target} are still not readable a day "
                f"after their tier's time ({eta:%Y-%m-%d %H:%M} UTC)",
                hint="rerun later (the ticket continues), or check the bucket's restores",
            )
        return waiting

    poll(still_archived, say, clock.sleep)


def _costs(
    archived: list[str], classes: dict[str, str], heads: dict[str, Head]
) -> dict[str, float]:
    """What thawing `archived` costs per tier: retrieval per GB, and per request."""
    costs: dict[str, float] = {}
    for volume in archived:
        prices = load_prices(classes[volume])
        for tier in prices.volumes.retrieval:
            gb = heads[volume].size / prices.bytes_per_gb
            cost = gb * tier.usd_per_gb + tier.requests_usd_per_1000 / 1000
            costs[tier.name] = costs.get(tier.name, 0.0) + cost
    return costs

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
import stat
import subprocess
import tempfile
import time as clock
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from agent import execute, reapply, remote
from agent.backup_sets import StoredFile, latest_time
from agent.config.load import METADATA_RECORD
from agent.duplicity.common import Repository, backup_name, relative_path
from agent.duplicity.list_files import Entry, list_files_command, parse_listing
from agent.duplicity.restore import restore_command
from agent.errors import (
    NotInBackup,
    RemoteCommandFailed,
    RestoreIncomplete,
    ThawNeeded,
    UsageError,
)
from agent.execute import ANY_EXIT
from agent.host import HostContext, open_host
from agent.landing import check_free, checked_request, move, scratch_beside
from agent.metadata import shown
from agent.offsite.prices import load_prices
from agent.offsite.push import Store, open_store
from agent.offsite.s3 import Head, RemoteObject
from agent.offsite.thaw import Ticket, poll, required_volumes, tiers_for
from agent.paths import ServerPaths
from agent.times import check_time

RECORD = METADATA_RECORD.lstrip("/")
TYPES = {"reg": stat.S_IFREG, "dir": stat.S_IFDIR, "sym": stat.S_IFLNK, "fifo": stat.S_IFIFO,
         "sock": stat.S_IFSOCK, "chr": stat.S_IFCHR, "blk": stat.S_IFBLK}  # fmt: skip
Say = Callable[[str], None]
Opened = tuple[HostContext, Store, Repository]


def list_offsite(
    paths: ServerPaths,
    name: str,
    target_name: str,
    time: str | None,
    opened: Opened | None = None,
) -> list[Entry]:
    """The files of the host's copy on the target as of `time` (signatures only, which stay
    STANDARD: never a thaw), each name exact (parse_listing)."""
    time = check_time(time)
    sets, store, repository = opened or _open(paths, name, target_name)[0]
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
    to: str | None,
    to_host: bool = False,
    ssh: remote.Ssh | None = None,
    thaw: str | None,
    days: int,
    wait: bool,
    say: Say,
) -> str:
    """Restore `path` (None: everything) of host `name` as of `time` from the target into
    folder `to` here, or with `to_host` onto the host (in place, or into its folder `to`),
    thawing what it needs; where it went. The restore is checked against the set's listing:
    what did not come back is named (RestoreIncomplete), as is what could not be re-applied."""
    time = check_time(time)
    path = checked_request(path, to, to_host)
    (sets, store, repository), listed = _open(paths, name, target_name)
    when = f"as of {time}" if time else "latest"
    if time is None:  # the same set for the files and their record, whatever is pushed meanwhile
        time = latest_time({key: StoredFile(item.size, True) for key, item in listed.items()})
    folder = to or "/"
    target = str(PurePosixPath(folder) / relative_path(path)) if path else folder
    what = f"{shown(path) if path else 'everything'} of {name} ({when})"
    where = f"on {name}" if to_host else "on this server"
    within = relative_path(path) if path else ""
    if to_host:
        if ssh is None:
            raise UsageError("a restore onto the host needs the server's SSH key")
        with remote.session(ssh, sets.host) as host:  # refused before any thaw is asked
            check_free(host, folder if to else target, bool(to), where)
        stage = paths.volume_state_dir / "restoring"
        stage.mkdir(mode=0o700, parents=True, exist_ok=True)
    else:
        check_free(execute.LOCAL, folder, True, where)
        stage = Path(folder).parent
        if not stage.is_dir():
            raise UsageError(f"--to {shown(folder)}: {shown(str(stage))} does not exist")
    # duplicity's dry run makes the target's folders: into a scratch one, never at --to;
    # then the restore into a hidden sibling: one cut off half-way leaves nothing at --to
    scratch = Path(tempfile.mkdtemp(dir=stage, prefix=".dupstack-restoring-"))
    try:
        needed = _needed(sets, store, repository, f"{scratch}/plan", path, time)
        if path:  # and the volume of the set's metadata record, re-applied after
            record = _needed(sets, store, repository, f"{scratch}/plan-record", METADATA_RECORD,
                             time)  # fmt: skip
            needed += [volume for volume in record if volume not in needed]
        shutil.rmtree(scratch / "plan", ignore_errors=True)
        shutil.rmtree(scratch / "plan-record", ignore_errors=True)
        say(f"{what} needs {len(needed)} volume(s) from {target_name}")
        _thaw(paths, sets, store, needed, thaw=thaw, days=days, wait=wait, say=say)
        # duplicity fails on a target whose name is not UTF-8: it lands in a plain one, moved
        landing = scratch / "landing"
        argv = restore_command(repository, str(landing), path=path, time=time)
        say(f"restoring from {target_name} ...")
        sets.run_here(argv, env=store.duplicity_env())
        listing = list_offsite(paths, name, target_name, time, opened=(sets, store, repository))
        missing = not_restored(listing, path, landing)
        if not missing:
            say(f"checked against the set's listing: every file of {what} came back")
        if to_host:
            assert ssh is not None
            report = _ship(sets, ssh, store, repository, scratch, folder, target, within, time)
        else:
            inside = scratch / "to"  # root's alone until the record is re-applied
            placed = inside / relative_path(path) if path else inside
            placed.parent.mkdir(parents=True, exist_ok=True)
            landing.rename(placed)
            report = reapply.here(sets, repository, str(inside), within, time,
                                  env=store.duplicity_env())  # fmt: skip
            check_free(execute.LOCAL, folder, True, where)  # appeared meanwhile?
            if Path(folder).is_dir():
                Path(folder).rmdir()  # empty, as checked
            inside.rename(folder)
            os.chmod(folder, 0o700)  # the host's owners and set-id files: nobody else's way in
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    say(f"restored {what} from {target_name} to {shlex.quote(shown(target))} {where}")
    if missing:
        for line in report.lines():
            say(line)
        names = ", ".join(shown(os.fsdecode(name)) for name in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise RestoreIncomplete(
            f"{len(missing)} file(s) of {what} that {target_name}'s set lists did not come "
            f"back: {names}{more}; the rest is restored {where}",
            hint=f"restore those again into a new folder (--path P --to DIR); if they stay "
            f"missing, the copy on {target_name} is damaged: `dupctl offsite push --target "
            f"{target_name}` re-copies what differs from the volume",
        )
    reapply.told(report, what, where, say)
    return target


def not_restored(listing: list[Entry], path: str | None, landing: Path) -> list[bytes]:
    """Each file the set lists (below `path`) that is not in the tree restored at `landing`
    as the type it was: duplicity may log a file it could not restore and go on."""
    base = os.fsencode(path or "/")
    missing = []
    for entry in listing:
        if entry.path != base and not entry.path.startswith(base.rstrip(b"/") + b"/"):
            continue
        below = os.path.relpath(entry.path, base)
        restored = (
            os.fsencode(landing) if below == b"." else os.path.join(os.fsencode(landing), below)
        )
        try:
            kind = stat.S_IFMT(os.lstat(restored).st_mode)
        except OSError:
            missing.append(entry.path)
            continue
        if TYPES.get(entry.type, kind) != kind:
            missing.append(entry.path)
    return missing


def _ship(
    sets: HostContext,
    ssh: remote.Ssh,
    store: Store,
    repository: Repository,
    scratch: Path,
    folder: str,
    target: str,
    within: str,
    time: str | None,
) -> reapply.Report:
    """Move the tree restored at `scratch`/landing onto the host at `target` (a tar stream
    over SSH, owners by number, holes kept) with the set's metadata record beside it, and
    re-apply the record there."""
    recorded = not within or reapply.fetch_record(sets, repository, str(scratch / "record"),
                                                  time, store.duplicity_env())  # fmt: skip
    shipped = [name for name in ("landing", "record") if (scratch / name).exists()]
    packed = ("tar", "--create", "--file=-", "--numeric-owner", "--sparse",
              f"--directory={scratch}", "--", *shipped)  # fmt: skip
    there = scratch_beside(target)
    unpack = ("tar", "--extract", "--file=-", "--numeric-owner", "--same-owner",
              "--preserve-permissions", f"--directory={there}")  # fmt: skip
    with remote.session(ssh, sets.host) as host:
        host.run(("mkdir", "-p", "--", os.path.dirname(there)))
        host.run(("mkdir", "-m", "0700", "--", there))
        try:
            with subprocess.Popen(packed, stdout=subprocess.PIPE) as tar:
                assert tar.stdout is not None
                host.feed(unpack, tar.stdout)
            if tar.returncode:
                raise RemoteCommandFailed(f"tar of the restored files exited {tar.returncode}")
            tree = f"{there}/tree"  # root's alone until the record is re-applied
            placed = f"{tree}/{within}" if within else tree
            move(host, f"{there}/landing", placed)
            record = f"{there}/record" if within else os.path.join(tree, RECORD)
            report = reapply.apply(host, record, tree, within) if recorded else (
                reapply.Report(found=False)
            )  # fmt: skip
            # checked again: what appeared there while the volumes thawed is never replaced
            check_free(host, target, target == folder, f"on {sets.name}")
            move(host, placed, target)
            return report
        finally:
            host.run(("rm", "-rf", "--", there), ok_codes=ANY_EXIT)


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


def _open(
    paths: ServerPaths, name: str, target_name: str
) -> tuple[Opened, Mapping[str, RemoteObject]]:
    sets = open_host(paths, name, need_backup=False)  # the volume's copy may be gone
    offsite = sets.inventory.target(target_name)
    store = open_store(paths, offsite)
    listed = store.listing(name)
    if not listed:  # reaches it (typed errors, short timeouts) before duplicity
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
    return (sets, store, repository), listed


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
        costs = _costs(archived, classes, heads, sets.inventory.prices)
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
    archived: list[str],
    classes: dict[str, str],
    heads: dict[str, Head],
    config: Mapping[str, Any],
) -> dict[str, float]:
    """What thawing `archived` costs per tier: retrieval per GB, and per request."""
    costs: dict[str, float] = {}
    for volume in archived:
        prices = load_prices(classes[volume], config=config)
        for tier in prices.volumes.retrieval:
            gb = heads[volume].size / prices.bytes_per_gb
            cost = gb * tier.usd_per_gb + tier.requests_usd_per_1000 / 1000
            costs[tier.name] = costs.get(tier.name, 0.0) + cost
    return costs

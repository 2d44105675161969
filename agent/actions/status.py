"""`dupctl status`: each host's last run and its sets, read on this server (hosts may be down)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from agent import quota
from agent.backup_sets import chains_of, stored_files
from agent.config.load import HostConfig, load_inventory
from agent.duplicity.status import collection_status_command, parse_collection_status
from agent.errors import DupstackError
from agent.host import open_host
from agent.paths import ServerPaths
from agent.repository import backups_dir
from agent.runlog import read_drill, read_last_success, read_status, stamp
from agent.schedule import crontab
from agent.times import interval


def hosts_status(paths: ServerPaths, names: list[str]) -> list[dict[str, Any]]:
    """One entry per host (all when `names` is empty); a host that cannot be read has `error`."""
    inventory = load_inventory(paths)
    for name in names:
        inventory.host(name)  # an unknown name is an error before any work
    now = datetime.now().astimezone()
    return [
        {**host_status(paths, name), "schedule": _schedule(inventory.host(name), now)}
        for name in dict.fromkeys(names) or sorted(inventory.hosts)
    ]


def _schedule(host: HostConfig, now: datetime) -> dict[str, Any]:
    """The host's cron jobs as the inventory says, with their next runs (server time)."""
    jobs = {job.kind: job for job in crontab.host_jobs(host)}
    entry: dict[str, Any] = {"catch_up": host.schedule.catch_up}
    for kind in ("backup", "prune", "drill"):
        job = jobs.get(kind)
        entry[kind] = job.cron.expression if job and job.cron else None
        next_run = job.next_run(now) if job else None
        entry[f"next_{kind}"] = next_run.isoformat(timespec="minutes") if next_run else None
    return entry


def host_status(paths: ServerPaths, name: str) -> dict[str, Any]:
    """The last run (state_dir/status) and the sets on the volume (collection-status)."""
    entry: dict[str, Any] = {
        "host": name,
        "last_run": read_status(paths, name),
        "last_success": _end(read_last_success(paths, name)),
        "last_drill": read_drill(paths, name),
    }
    try:
        sets = open_host(paths, name, need_backup=False)
        output = sets.run_here(collection_status_command(sets.here))
    except DupstackError as error:
        return {**entry, "error": error.message.splitlines()[0]}
    collection = parse_collection_status(output)
    primary = [chain for chain in collection.chains if chain.primary]
    last_full = collection.last_full
    due = interval(sets.host.full_if_older_than)
    return {
        **entry,
        "chains": len(collection.chains),
        "sets": sum(len(chain.sets) for chain in collection.chains),
        "chain_length": len(primary[0].sets) if primary else 0,
        "incomplete_sets": collection.incomplete_sets,
        "size": sum(f.stat().st_size for f in os.scandir(backups_dir(paths, sets.host))),
        "usage": quota.usage(backups_dir(paths, sets.host)),  # on disk, as quota counts it
        "quota": sets.host.quota,
        "limit": (room := sets.room()).size,  # the quota, or its share of the volume
        "limit_from": "quota" if room.given else "share",
        "last_set": _last_set(sets.folder),
        "last_backup": _when(collection.last_backup),
        "last_full": _when(last_full),
        "next_full": _when(last_full + due if last_full else None),
        "error": None,
    }


def _last_set(folder: Path) -> str | None:
    """The newest complete set's time, as --time takes it: not the last run's start (a second
    or so before it), nor collection-status's newest set (which may be a killed run's)."""
    ends = [chain["end"] for chain in chains_of(stored_files(folder))["chains"] if chain["end"]]
    return max(ends, default=None)


def _end(record: dict[str, Any] | None) -> str | None:
    return record["end"] if record else None


def _when(moment: datetime | None) -> str | None:
    return stamp(moment) if moment else None

"""The tenant hosts' crontab, `/etc/cron.d/dupstack-hosts`, rendered from the inventory.

A backup, a prune and a drill line per host (at its own `H` minute), plus dupctl's own two:
every few minutes `schedule apply` re-renders this file if the inventory was edited by hand,
and at boot and hourly `backup --missed` runs what the server missed while it was down. The
server's own /etc backup (`/etc/cron.d/dupstack`, agent/server/schedule.py) is separate.
Overlapping runs cannot happen: each host's runs take its lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from shlex import join, quote

from agent.config.load import HostConfig, Inventory, load_inventory
from agent.files import write_atomic
from agent.paths import ServerPaths
from agent.schedule.cron import Cron, resolve

PATH = "/opt/dupstack/current/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APPLY_EVERY = "*/5 * * * *"  # how soon a hand edit of the inventory reaches cron
CATCH_UP = "H * * * *"  # hourly (and @reboot): run what was missed
STALE = "H * * * *"  # hourly: tell of hosts with no successful backup for stale_after
# A run counts as missed once its time is this far past with no run started since: cron's
# own line has started it by then (or the server was down).
GRACE = timedelta(minutes=15)
LOG_TAG = "dupstack"


@dataclass(frozen=True)
class Job:
    """One line of the crontab: what runs when (`host` None: dupctl's own jobs)."""

    kind: str  # backup, prune, drill, apply, catch-up, stale
    host: str | None
    cron: Cron | None  # None: @reboot only
    argv: tuple[str, ...]
    at_boot: bool = False

    def next_run(self, now: datetime) -> datetime | None:
        return self.cron.next_after(now) if self.cron else None


def host_jobs(host: HostConfig) -> list[Job]:
    """The host's scheduled backup, prune and drill (none for a setting that is null)."""
    jobs = []
    for kind in ("backup", "prune", "drill"):
        if expression := getattr(host.schedule, kind):
            cron = resolve(expression, host.name)
            jobs.append(Job(kind, host.name, cron, ("dupctl", kind, host.name)))
    return jobs


def all_jobs(inventory: Inventory | None) -> list[Job]:
    """Every job of the crontab, hosts in name order, dupctl's own jobs last."""
    hosts = [inventory.hosts[name] for name in sorted(inventory.hosts)] if inventory else []
    catch_up = ("dupctl", "backup", "--missed")
    notifications = inventory.notifications if inventory else None
    stale = (
        [Job("stale", None, resolve(STALE, "stale"), ("dupctl", "notify", "stale"))]
        if notifications and notifications.stale_after
        else []
    )
    return [
        *(job for host in hosts for job in host_jobs(host)),
        *stale,
        Job(
            "apply", None, resolve(APPLY_EVERY, "apply"), ("dupctl", "schedule", "apply", "--quiet")
        ),
        Job("catch-up", None, resolve(CATCH_UP, "catch-up"), catch_up),
        Job("catch-up", None, None, catch_up, at_boot=True),
    ]


def missed(host: HostConfig, last_start: datetime | None, now: datetime) -> bool:
    """True if the host's scheduled backup should have started and has not (never run
    counts as missed). Hosts without a backup schedule or with catch_up off never miss."""
    if not host.schedule.backup or not host.schedule.catch_up:
        return False
    due = resolve(host.schedule.backup, host.name).last_before(now - GRACE)
    return last_start is None or last_start < due


def render(paths: ServerPaths, inventory: Inventory | None) -> str:
    """The crontab text: deterministic for a given inventory."""
    guard = f"mountpoint -q {quote(str(paths.mount_point))} &&"
    lines = [
        f"# Written by dupctl from {paths.config_file} (schedule:). Do not edit: it is",
        "# rewritten when the inventory changes. `dupctl schedule show` lists the jobs.",
        f"# Output: journalctl -t {LOG_TAG}",
        "SHELL=/bin/sh",
        f"PATH={PATH}",
    ]
    for job in all_jobs(inventory):
        when = "@reboot" if job.at_boot else job.cron.fields  # type: ignore[union-attr]
        comment = f"# {job.kind} {job.host}" if job.host else f"# {job.kind}"
        command = f"{join(job.argv)} 2>&1 | logger -t {LOG_TAG}"
        # the others work on the volume: not before it is mounted (a volume that is not is
        # when hosts go stale: that check runs regardless)
        if job.kind not in ("apply", "stale"):
            command = f"{guard} {command}"
        lines += [comment, f"{when} root {command}"]
    return "\n".join(lines) + "\n"


def write_crontab(paths: ServerPaths, inventory: Inventory | None) -> bool:
    """Replace the hosts' crontab atomically (cron reads it as it is); True if it changed."""
    return write_atomic(paths.hosts_cron_file, render(paths, inventory), 0o644)


def refresh(paths: ServerPaths) -> bool:
    """Re-render the crontab from the inventory as it is now (none yet: dupctl's jobs only).

    An invalid inventory raises ConfigError and leaves the current crontab in force."""
    inventory = load_inventory(paths) if paths.config_file.exists() else None
    return write_crontab(paths, inventory)

"""`dupctl schedule show|apply`: the tenant hosts' cron jobs, rendered from the inventory."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent.config.load import load_inventory
from agent.paths import ServerPaths
from agent.runlog import read_status
from agent.schedule import crontab


def apply_schedule(paths: ServerPaths) -> bool:
    """Re-render the crontab from the inventory; True if it changed. A broken inventory
    raises ConfigError and leaves the crontab in force as it was."""
    return crontab.refresh(paths)


def show_schedule(paths: ServerPaths, now: datetime | None = None) -> dict[str, Any]:
    """Every job with its expression, the crontab's fields and its next run (server time);
    backup jobs also with the host's last run and full interval. `up_to_date` is False when
    the crontab in force differs from what the inventory says (apply has not run yet)."""
    now = now or datetime.now().astimezone()
    inventory = load_inventory(paths) if paths.config_file.exists() else None
    jobs = []
    for job in crontab.all_jobs(inventory):
        next_run = job.next_run(now)
        entry: dict[str, Any] = {
            "job": job.kind,
            "host": job.host,
            "when": "@reboot" if job.at_boot else job.cron.expression,  # type: ignore[union-attr]
            "cron": "@reboot" if job.at_boot else job.cron.fields,  # type: ignore[union-attr]
            "next_run": next_run.isoformat(timespec="minutes") if next_run else None,
            "command": " ".join(job.argv),
        }
        if job.kind == "backup" and inventory is not None:
            host = inventory.hosts[job.host]  # type: ignore[index]
            last = read_status(paths, host.name)
            entry["full_if_older_than"] = host.full_if_older_than
            entry["catch_up"] = host.schedule.catch_up
            entry["last_run"] = last and {key: last[key] for key in ("start", "result")}
        jobs.append(entry)
    file = paths.hosts_cron_file
    current = file.read_text() if file.exists() else None
    return {
        "crontab": str(file),
        "up_to_date": current == crontab.render(paths, inventory),
        "jobs": jobs,
    }

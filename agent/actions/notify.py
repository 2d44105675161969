"""`dupctl notify test|stale`: a test message to every URL; hosts without a recent successful
backup, each told once (agent/notify.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent import notify
from agent.config.load import load_inventory
from agent.errors import NotificationFailed
from agent.paths import ServerPaths


def send_test(paths: ServerPaths) -> notify.Delivery:
    """A test message to every URL of notifications.urls_file; DupstackError naming the file
    when none took it (each failed line is a warning)."""
    inventory = load_inventory(paths)
    event = notify.Event(
        action="test",
        result="ok",
        details=(f"hosts: {len(inventory.hosts)}", "failures and stale hosts are told here"),
    )
    delivery = notify.tell(paths, inventory, event)
    if not delivery.sent:
        raise NotificationFailed(
            f"no URL of {delivery.file} took the test message ({delivery.total} tried)",
            hint="fix the lines named above (apprise URL forms: docs/notifications.md)",
        )
    return delivery


def check_stale(paths: ServerPaths, now: datetime | None = None) -> dict[str, Any]:
    """The stale hosts, newly stale ones told: `stale_after` (None: off) and one entry per
    host, whose `told` is now, before, failed (no URL took it) or nobody (no
    notifications: section)."""
    inventory = load_inventory(paths)
    now = now or datetime.now(UTC)
    hosts = []
    for stale, delivery in notify.report_stale(paths, inventory, now):
        if inventory.notifications is None:
            told = "nobody"
        elif delivery is None:
            told = "before"
        else:
            told = "now" if delivery.sent else "failed"
        last = stale.last_run
        hosts.append({
            "host": stale.host,
            "since": stale.since,
            "last_success": None if stale.episode == notify.NEVER else stale.episode,
            "last_run": last and {key: last.get(key) for key in ("start", "result", "error")},
            "told": told,
        })  # fmt: skip
    return {"stale_after": notify.stale_after(inventory), "hosts": hosts}

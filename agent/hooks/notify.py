"""Notifications and pings of a host's run (agent/notify.py): at `before` the host's start
ping; at `always` its success or fail ping, then a message when the run failed, when a hook
failed under a good backup, or (with `notifications.success`) when it went well.

Nothing here stops a backup or needs the host: a start ping that fails is a warning in the
run's log, not a failed step (that would fail the run). At `always` a failure is the step's
outcome, next to the run's own. This phase's other outcomes are not known yet: an `always`
command hook that fails is in the record, not in the message."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from agent import notify
from agent.errors import DupstackError

if TYPE_CHECKING:
    from agent.hooks import HostRun

NAME = "notify"
logger = logging.getLogger(__name__)


def plan(run: HostRun, phase: str) -> list[tuple[str, Callable[[HostRun], None]]]:
    """The start ping before; the end ping and the message (if one is due) always."""
    pinged = run.context.host.ping_url_file is not None
    if phase == "before":
        return [("ping start", _start_ping)] if pinged else []
    if phase != "always":
        return []
    steps: list[tuple[str, Callable[[HostRun], None]]] = []
    if pinged:
        steps.append(("ping fail" if run.error else "ping success", _end_ping))
    event = run_event(run)
    if notify.should_tell(run.context.inventory, event):
        steps.append((f"tell {event.result}", _teller(event)))
    return steps


def run_event(run: HostRun) -> notify.Event:
    """The run as an event: failed (its error and hint), warning (a hook failed under a good
    backup), or ok; with the set made and the duration when known."""
    details = [f"set: {run.action}"] if run.action else []
    details.append(f"duration: {(datetime.now(UTC) - run.started).total_seconds():.0f} s")
    common = {"action": "backup", "host": run.context.name, "log": run.log.name}
    if run.error is not None:
        return notify.Event(
            result="failed",
            error=run.error.message.splitlines()[0],
            hint=run.error.hint or None,
            details=tuple(details),
            **common,
        )
    if failed := [outcome for outcome in run.outcomes if outcome.result == "failed"]:
        return notify.Event(
            result="warning",
            error="; ".join(f"{o.phase} hook {o.hook} failed: {o.error}" for o in failed),
            hint="the backup itself is good: fix the hook, see the log",
            details=tuple(details),
            **common,
        )
    return notify.Event(result="ok", details=tuple(details), **common)


def _start_ping(run: HostRun) -> None:
    context = run.context
    try:
        notify.ping(
            context.paths, context.host, "start", f"dupctl backup of {context.name} starting"
        )
    except DupstackError as error:  # the backup goes on: a monitor must not stop it
        logger.warning("%s", error.message)
        run.log.write(f"dupctl: warning: {error.message}\n")
    except Exception as bug:  # its text may hold the URL: named by type only
        logger.warning("%s: start ping failed: %s", context.name, type(bug).__name__)
        run.log.write(f"dupctl: warning: start ping failed ({type(bug).__name__})\n")


def _end_ping(run: HostRun) -> None:
    if run.error is None:
        kind, text = "success", f"{run.action or 'backup'} ok"
    else:
        kind, text = "fail", "\n".join(filter(None, (run.error.message, run.error.hint)))
        text += f"\nlog: {run.log.name}"
    notify.ping(run.context.paths, run.context.host, kind, text)


def _teller(event: notify.Event) -> Callable[[HostRun], None]:
    def step(run: HostRun) -> None:
        delivery = notify.tell(run.context.paths, run.context.inventory, event)
        run.log.write(f"dupctl: told {delivery.sent} of {delivery.total} URL(s)\n")
        if delivery.failed:
            lines = ", ".join(str(number) for number, _why in delivery.failed)
            raise DupstackError(
                f"notification not delivered by line(s) {lines} of {delivery.file}",
                hint="`dupctl notify test` tries every URL (docs/notifications.md)",
            )

    return step

"""Offsite push after a good backup: the host's new sets copied to every target
(agent/offsite/push.py) while its lock is still held, and its offsite lock taken too. A
failed push is recorded beside the good backup (and told); the next push completes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.config.load import OffsiteTarget
from agent.locks import host_lock

if TYPE_CHECKING:
    from agent.hooks import HostRun

NAME = "offsite"


def plan(run: HostRun, phase: str) -> list[tuple[str, Callable[[HostRun], None]]]:
    inventory = run.context.inventory
    if phase != "after_success" or not inventory.push_after_backup:
        return []
    targets = [target for _, target in sorted(inventory.offsite.items())]
    return [(f"push to {target.name}", _pusher(target)) for target in targets]


def _pusher(target: OffsiteTarget) -> Callable[[HostRun], None]:
    def step(run: HostRun) -> None:
        def say(line: str) -> None:
            run.log.write(f"dupctl: offsite: {line}\n")

        from agent.offsite.push import push_host  # boto3 loads only for hosts it pushes

        context = run.context
        with host_lock(context.paths, context.name, "offsite"):  # not beside a push of it
            push_host(context.paths, context.host, target, say)

    return step

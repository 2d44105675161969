"""Command hooks: the inventory's `hooks:` (per host, over `defaults` key by key), argv lists
run on the tenant host over the run's SSH session, e.g. a dump into a folder the backup
includes. Each gets DUPSTACK_HOST and DUPSTACK_PHASE (and after the backup DUPSTACK_RESULT)
in its environment; a non-zero exit is the step's failure, with its last stderr line."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from agent.errors import HookFailed
from agent.execute import ANY_EXIT

if TYPE_CHECKING:
    from agent.hooks import HostRun

NAME = "commands"
TIMEOUT = 3600.0  # seconds for one command (a database dump may take long)


def plan(run: HostRun, phase: str) -> list[tuple[str, Callable[[HostRun], None]]]:
    """One step per command the host's `hooks.PHASE` lists; none without a session."""
    if run.tenant is None:
        return []
    return [
        (shlex.join(argv), _runner(tuple(argv), phase))
        for argv in run.context.host.hooks.get(phase, ())
    ]


def _runner(argv: Sequence[str], phase: str) -> Callable[[HostRun], None]:
    def step(run: HostRun) -> None:
        assert run.tenant is not None
        settings = {"DUPSTACK_HOST": run.context.name, "DUPSTACK_PHASE": phase}
        if phase != "before":
            settings["DUPSTACK_RESULT"] = "failed" if run.error else "ok"
        env = ("env", *(f"{key}={value}" for key, value in settings.items()))
        done = run.tenant.run((*env, *argv), log=run.log, timeout=TIMEOUT, ok_codes=ANY_EXIT)
        if done.exit_code:
            said = done.said()
            raise HookFailed(
                f"{shlex.join(argv)} exited {done.exit_code}" + (f": {said}" if said else "")
            )

    return step

"""Database dumps: the host's `databases:` dumped into its root-only spool just before its
backup (which includes the spool, agent/host.py), and the spool removed after the run. A
dump that fails fails the run with the database tool's own error (nothing is backed up)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agent import dumps
from agent.config.load import DUMP_SPOOL, Database
from agent.errors import HookFailed
from agent.execute import ANY_EXIT

if TYPE_CHECKING:
    from agent.hooks import HostRun

NAME = "databases"
TIMEOUT = 6 * 3600.0  # seconds for one dump


def plan(run: HostRun, phase: str) -> list[tuple[str, Callable[[HostRun], None]]]:
    """Before: an empty spool, then one dump per database; always: the spool removed."""
    databases = run.context.host.databases
    if run.tenant is None or not databases:
        return []
    if phase == "before":
        steps = [(f"empty {DUMP_SPOOL}", _spool)]
        return steps + [(f"dump {database.label}", _dumper(database)) for database in databases]
    if phase == "always" and "before" in run.done:  # this run dumped (another may read it)
        return [(f"remove {DUMP_SPOOL}", _clear)]
    return []


def _spool(run: HostRun) -> None:
    assert run.tenant is not None
    run.tenant.run(dumps.prepare_spool(), log=run.log)


def _clear(run: HostRun) -> None:
    assert run.tenant is not None
    run.tenant.run(dumps.clear_spool(), log=run.log)


def _dumper(database: Database) -> Callable[[HostRun], None]:
    def step(run: HostRun) -> None:
        assert run.tenant is not None
        done = run.tenant.run(
            dumps.dump_command(database), log=run.log, timeout=TIMEOUT, ok_codes=ANY_EXIT
        )
        if done.exit_code:
            raise HookFailed(
                f"{database.label}: dump failed (exit {done.exit_code}): "
                + (done.said(2) or "no error output"),
                hint=f"check {database.label} on {run.context.name} and its credentials",
            )

    return step

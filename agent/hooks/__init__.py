"""Hook points of a host's run, the borgmatic way: before, after success, after failure,
always. Each hook module says which steps it has for a host at a phase (`plan`); the
dispatcher runs them in order and records each outcome in the run's record. A failing
"before" step fails the run with its own message (the backup is not made); a failing "after"
step is recorded next to the good backup and never hides it. Hook modules: commands (the
inventory's `hooks:`), databases (dumps into the spool), metadata (what duplicity does
not keep, recorded in the spool), notify (pings and messages), offsite (the push after a
good backup).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import IO, Protocol

from agent import remote
from agent.errors import DupstackError
from agent.host import HostContext

logger = logging.getLogger(__name__)
PHASES = ("before", "after_success", "after_failure", "always")


@dataclass
class HostRun:
    """What hooks see of a run: the host, the session to it (None if it could not be
    opened), the run's log, and once known the kind of set made or the error."""

    context: HostContext
    log: IO[str]
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    tenant: remote.Session | None = None
    action: str | None = None
    error: DupstackError | None = None
    outcomes: list[HookOutcome] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)  # "NAME: why", agent/screening.py
    done: set[str] = field(default_factory=set)

    def dispatch(self, phase: str, hooks: Sequence[HookModule] | None = None) -> list[HookOutcome]:
        """Run every step planned for `phase` (once per run); the outcomes of this phase."""
        if phase in self.done:
            return []
        self.done.add(phase)
        modules = HOOKS if hooks is None else hooks
        outcomes: list[HookOutcome] = []
        # before: in order, stopping at the first failure (its cause stops the run); after:
        # in reverse, as a stack unwinds (notify, first before, tells last what all did)
        for module in modules if phase == "before" else reversed(modules):
            for label, step in module.plan(self, phase):
                outcome = self._run(module.NAME, label, phase, step)
                outcomes.append(outcome)
                self.outcomes.append(outcome)  # later steps of the phase see it
                if phase == "before" and outcome.result == "failed":
                    return outcomes
        return outcomes

    def _run(
        self, name: str, label: str, phase: str, step: Callable[[HostRun], None]
    ) -> HookOutcome:
        started = time.monotonic()
        self.log.write(f"dupctl: {phase} hook {name}: {label}\n")
        hint = None
        try:
            step(self)
        except DupstackError as error:
            failure: str | None = error.message.splitlines()[0]
            hint = error.hint or None
        except Exception as bug:  # a hook's surprise is its failure, not the run's crash
            logger.debug("%s hook %s failed", phase, name, exc_info=True)
            failure = f"{name}: {bug!r}"
        else:
            failure = None
        if failure:
            self.log.write(f"dupctl: {phase} hook {name} failed: {failure}\n")
        return HookOutcome(
            hook=name,
            step=label,
            phase=phase,
            result="failed" if failure else "ok",
            error=failure,
            duration=round(time.monotonic() - started, 1),
            hint=hint,
        )


@dataclass(frozen=True)
class HookOutcome:
    hook: str  # the module (commands, ...)
    step: str  # what it did, in a few words
    phase: str
    result: str  # ok, failed
    error: str | None
    duration: float
    hint: str | None = None  # what the failing step said to do

    def as_record(self) -> dict[str, object]:
        return asdict(self)


class HookModule(Protocol):
    """A hook: its NAME and the steps it has for a run at a phase."""

    NAME: str

    def plan(self, run: HostRun, phase: str) -> list[tuple[str, Callable[[HostRun], None]]]: ...


from agent.hooks import commands, databases, metadata, notify, offsite  # noqa: E402 (none imports this)

# notify first: its start ping goes before everything; unwound last, it tells what all did.
# metadata after databases: the dumps' spool is emptied first, then the record written in it.
HOOKS: tuple[HookModule, ...] = (notify, commands, databases, metadata, offsite)

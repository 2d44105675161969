"""The metadata record: what duplicity does not keep of the host's files (extended
attributes, ACLs, file capabilities, hard links, holes) written into the spool just before
the backup, which includes it (agent/metadata.py), and removed after the run. A record that
cannot be written fails the run: a backup without it would restore those silently lost."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent import metadata
from agent.errors import HookFailed
from agent.execute import ANY_EXIT

if TYPE_CHECKING:
    from agent.hooks import HostRun

NAME = "metadata"
TIMEOUT = 6 * 3600.0  # seconds: a walk of millions of files


def plan(run: HostRun, phase: str) -> list[tuple[str, Callable[[HostRun], None]]]:
    if run.tenant is None:
        return []
    if phase == "before":
        return [("record xattrs, ACLs, hard links, holes", _record)]
    if phase == "always" and "before" in run.done:
        return [("remove the record", _clear)]
    return []


def _record(run: HostRun) -> None:
    assert run.tenant is not None
    argv, request = metadata.capture_command(run.context.selection)
    done = run.tenant.run(argv, input=request, timeout=TIMEOUT, ok_codes=ANY_EXIT)
    if done.exit_code:
        raise HookFailed(
            f"{run.context.name}: the metadata record could not be written (exit "
            f"{done.exit_code}): {done.said(2) or 'no error output'}",
            hint=f"python3 must run as root on {run.context.name}, with room in /var/backups",
        )
    summary = json.loads(done.stdout)
    run.log.write(
        f"dupctl: metadata record: {summary['files']} files, {summary['with_xattrs']} with "
        f"extended attributes, {summary['hardlink_groups']} hard-link groups, "
        f"{summary['sparse']} sparse\n"
    )
    for name, why in summary["errors"]:
        shown = metadata.shown(base64.b64decode(name))
        run.log.write(f"dupctl: warning: metadata not recorded for /{shown}: {why}\n")


def _clear(run: HostRun) -> None:
    assert run.tenant is not None
    run.tenant.run(metadata.clear_command(), log=run.log)

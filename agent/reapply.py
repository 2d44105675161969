"""The set's metadata record re-applied to files just restored (agent/metadata.py): the
record read from the restored tree when everything came back, else restored on its own from
the same set, here or on the host. Shared by every restore (volume, host, offsite)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping

from agent import execute, remote
from agent.config.load import METADATA_RECORD
from agent.duplicity.common import Repository
from agent.duplicity.restore import restore_command
from agent.errors import NotInBackup, RestoreIncomplete
from agent.execute import ANY_EXIT, Runner
from agent.host import HostContext
from agent.landing import exists
from agent.metadata import Report, apply_command


def here(
    sets: HostContext,
    repository: Repository,
    folder: str,
    within: str,
    time: str | None,
    env: Mapping[str, str] | None = None,
    record: str | None = None,
) -> Report:
    """Re-apply to what was restored below `folder` on this server (only `within`, relative
    to the host's "/"; "" for everything), from `repository` (the volume, or an offsite copy
    with its `env`). `record`: where the set's record was restored with the files (missing:
    the set has none); None: in the tree when it is everything, else fetched on its own."""
    if record is not None:
        found = os.path.lexists(record)
        return apply(execute.LOCAL, record, folder, within) if found else Report(found=False)
    if not within:
        return apply(execute.LOCAL, os.path.join(folder, METADATA_RECORD.lstrip("/")), folder, "")
    with tempfile.TemporaryDirectory(prefix="dupstack-record-") as scratch:
        record = os.path.join(scratch, "record")
        if not fetch_record(sets, repository, record, time, env):
            return Report(found=False)
        return apply(execute.LOCAL, record, folder, within)


def fetch_record(
    sets: HostContext,
    repository: Repository,
    record: str,
    time: str | None,
    env: Mapping[str, str] | None = None,
) -> bool:
    """Restore the set's record alone to `record` here; False if the set has none."""
    argv = restore_command(repository, record, path=METADATA_RECORD, time=time)
    done = execute.run(argv, secret=sets.passphrase, ok_codes=ANY_EXIT, env=env)
    return not _missing(sets, done)


def on_host(
    sets: HostContext,
    host: remote.Session,
    folder: str,
    within: str,
    time: str | None,
    record: str | None = None,
) -> Report:
    """Re-apply on the host to what its duplicity restored below `folder` there (`record`:
    as for here())."""
    if record is not None:
        return apply(host, record, folder, within) if exists(host, record) else Report(found=False)
    if not within:
        return apply(host, os.path.join(folder, METADATA_RECORD.lstrip("/")), folder, "")
    scratch = host.run(("mktemp", "-d", "-t", "dupstack-record.XXXXXXXX")).stdout.strip()
    try:
        record = f"{scratch}/record"
        argv = restore_command(sets.on_host, record, path=METADATA_RECORD, time=time)
        done = sets.run_on_host(host, argv)
        if _missing(sets, done):
            return Report(found=False)
        return apply(host, record, folder, within)
    finally:
        host.run(("rm", "-rf", "--", scratch), ok_codes=ANY_EXIT)


def told(report: Report, what: str, where: str, say: Callable[[str], None]) -> None:
    """Each line of `report`, then RestoreIncomplete if anything could not be re-applied."""
    for line in report.lines():
        say(line)
    if report.failed:
        raise RestoreIncomplete(
            f"{len(report.failed)} of the recorded attributes, links or holes of {what} could "
            f"not be re-applied {where} (each is listed above); the files' contents are restored",
            hint="restore onto a filesystem with extended attributes and ACLs (ext4, xfs), or "
            "re-apply them later from the record: docs/disaster-recovery.md, step 7",
        )


def _missing(sets: HostContext, done: execute.Result) -> bool:
    """Whether the record's restore found none in the set (older sets have none); other
    failures are raised."""
    try:
        sets.check(done)
    except NotInBackup:
        return True
    return False


def apply(runner: Runner, record: str, folder: str, within: str) -> Report:
    """Re-apply `record` (a path where `runner` runs) to `within` below `folder` there; a
    run that gives no report (no python3 there, killed) is its one failure."""
    argv, request = apply_command(record, folder, within)
    done = runner.run(argv, input=request, ok_codes=ANY_EXIT)
    try:
        return Report.parse(done.stdout)
    except (ValueError, KeyError, TypeError):
        said = done.said() or "no output"
        return Report(found=True, failed=[f"/{within}: the record could not be re-applied "
                                          f"(exit {done.exit_code}): {said}"])  # fmt: skip

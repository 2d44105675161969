"""`dupctl verify HOST`: on the host, check its latest backup (and with compare_data, compare
it with the host's files); duplicity fetches the sets from its chroot over SFTP."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import PurePosixPath

from agent import remote
from agent.config.load import DUMP_SPOOL
from agent.duplicity.verify import verify_command
from agent.errors import BackupDiffers
from agent.execute import Result
from agent.host import open_host
from agent.paths import ServerPaths
from agent.times import check_time

DIFFERENCE = "Difference found: "
MISSING = re.compile(r"File (.+) is missing")
SUMMARY = re.compile(r"Verify complete: (\d+) file\(s\) compared, (\d+) difference\(s\) found\.")


def verify(
    paths: ServerPaths,
    ssh: remote.Ssh,
    name: str,
    *,
    compare_data: bool,
    time: str | None,
    say: Callable[[str], None],
) -> None:
    """`say` each difference and duplicity's summary; BackupDiffers if there are any,
    BackupDamaged if a file of the backup does not match its manifest."""
    time = check_time(time)
    sets = open_host(paths, name)
    argv = verify_command(sets.on_host, sets.selection, compare_data=compare_data, time=time)
    with remote.session(ssh, sets.host) as host:
        sets.private_caches(host)
        done = sets.run_on_host(host, argv)
    lines = done.stdout.splitlines()
    found = [line.removeprefix(DIFFERENCE) for line in lines if line.startswith(DIFFERENCE)]
    differences = [line for line in found if not _spool_gone(line)]
    for line in differences:
        say(f"  {line}")
    if done.exit_code == 1 and differences:
        raise BackupDiffers(
            f"{name}: {len(differences)} difference(s) between its backup and its files",
            hint="expected for files changed since the backup; otherwise restore them",
        )
    if done.exit_code == 1 and found and not differences:
        done = Result(0, done.stdout, done.stderr)
    sets.check(done)
    summary = next((line for line in lines if line.startswith("Verify complete")), "verified")
    say(_without(summary, len(found) - len(differences)))


def _spool_gone(difference: str) -> bool:
    """A difference that only says the spool (dumps, metadata record: made for the backup,
    removed from the host after the run) or its parent folders are not there now."""
    if not (match := MISSING.fullmatch(difference)):
        return False
    missing, spool = PurePosixPath("/", match[1]), PurePosixPath(DUMP_SPOOL)
    return missing.is_relative_to(spool) or spool.is_relative_to(missing)


def _without(summary: str, left_out: int) -> str:
    """duplicity's summary without the `left_out` spool differences (and their files)."""
    if not left_out or not (match := SUMMARY.fullmatch(summary)):
        return summary
    compared, differences = int(match[1]) - left_out, int(match[2]) - left_out
    return (
        f"Verify complete: {compared} file(s) compared, {differences} difference(s) found "
        f"(the spool {DUMP_SPOOL}, removed from the host after each run, left out)."
    )

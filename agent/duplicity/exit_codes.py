"""The one place that turns a duplicity exit into a typed error with what to do
(cf. borgmatic's interpret_exit_code). Exit codes: duplicity/errors.py of 3.2.1."""

from __future__ import annotations

import re
from pathlib import Path

from agent.errors import (
    BackupDamaged,
    CacheDamaged,
    CommandFailed,
    DupstackError,
    KeyMismatch,
    NotInBackup,
    TargetNotEmpty,
    UsageError,
    read_only_volume,
)
from agent.execute import Result

FULL = 2**20  # bytes: less free space on the volume after a failed run means it filled up
# what duplicity 3.2.1 says when its cache (archive dir) and the sets disagree
CACHE_DAMAGED = "the local archive directory has been corrupted"


def interpret(
    host: str,
    done: Result,
    *,
    passphrase_file: Path,
    log: str | None = None,
    volume_free: int | None = None,
    volume: Path | None = None,
    volume_read_only: bool = False,
) -> None:
    """Raise what duplicity's exit means for `host`'s backups; nothing when it is 0.

    `volume_free` (bytes left on `volume` after a run that pushed to it) tells a full volume
    from other failures, as `volume_read_only` tells one remounted read-only meanwhile;
    `log` is named in the hint of failures that leave one."""
    code = done.exit_code
    if code == 0:
        return
    # GnuPG's log ends with a ===== line: the line before says what happened
    output = re.sub(r"(?m)^=====.*$", "", done.output)
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    last = lines[-1] if lines else f"exit {code}"
    wrong_secret = KeyMismatch(
        f"the passphrase does not decrypt {host}'s backups ({last})",
        hint=f"the stack secret {passphrase_file} is not the one they were made with: "
        "`dupctl init` restores it from this volume's escrow",
    )
    damaged = _damaged_file(output)
    if "Bad session key" in output or (code == 31 and damaged is None):  # 31, or 1: cache check
        raise wrong_secret
    if volume_read_only:  # SFTP says "Failure" for that too
        raise read_only_volume(volume)
    if volume_free is not None and volume_free < FULL:  # SFTP does not say "disk full"
        raise CommandFailed(
            f"{host}: the backup volume {volume} is full ({volume_free} bytes free): "
            f"duplicity exited {code}",
            hint="free space (dupctl prune) or grow the volume, then rerun; earlier sets are "
            "intact and the next run removes the unfinished one" + (f"; log: {log}" if log else ""),
        )
    error: DupstackError
    if CACHE_DAMAGED in output:
        error = CacheDamaged(
            f"duplicity's cache of {host}'s sets disagrees with them ({last})",
            hint="the cache is only a copy of the sets' manifests and signatures: dupctl drops "
            "it and rebuilds it from the sets; rerun",
        )
    elif damaged:
        error = BackupDamaged(
            f"{host}'s backup is damaged: {damaged} on the volume cannot be read ({last})",
            hint="it was changed or lost there (a disk fault?), not left by an unfinished run: "
            f"`dupctl sets {host}` shows the sets; move that set's files out of the host's "
            "folder (or put back the offsite copy's) and rerun" + (f"; log: {log}" if log else ""),
        )
    elif code == 11:
        error = TargetNotEmpty(f"{last}: restore only writes into a missing or empty folder")
    elif code in (19, 20):
        error = NotInBackup(
            f"that path is not in {host}'s backup at that time ({last})",
            hint=f"`dupctl list {host} [--time T]` shows what the backup holds",
        )
    elif code == 21:
        damaged = re.search(r"hash mismatch for file:\s*(\S+)", output)
        error = BackupDamaged(
            f"{host}'s backup is damaged: {damaged[1] if damaged else 'a volume'} "
            "does not match its manifest",
            hint="the file was changed on the volume; make a new full backup "
            f"(`dupctl backup {host} --full`) and keep the damaged chain for what it still holds",
        )
    elif code == 23 and (bad := [line for line in lines if "time string" in line]):
        error = UsageError(f"{bad[0]}: give a time like 2026-11-22T03:00:00Z, 3D or epoch seconds")
    elif code == 30 and "chains found" in output:
        error = NotInBackup(f"{host} has no complete backup ({last})")
    else:
        error = CommandFailed(
            f"duplicity exited {code} for {host}: {last}",
            hint=f"see {log}; the next run removes the unfinished set" if log else "",
        )
    raise error


# What gpg says of a file that is not whole OpenPGP data (emptied, cut short, garbled); a
# wrong passphrase is "Bad session key" instead.
GARBLED = ("decrypt_message failed", "no valid OpenPGP data found", "invalid packet",
           "unexpected EOF", "packet with unknown version")  # fmt: skip


def _damaged_file(output: str) -> str | None:
    """The set's file duplicity could not read back, or None: the one it names, or, when gpg
    says the data is not whole, the last it was copying into its cache (a wrong passphrase,
    "Bad session key", is told apart before this counts)."""
    if named := re.search(r"Error processing remote file \((\S+)\)", output):
        return named[1]
    copying = re.findall(r"Copying (\S+) to local cache", output)
    if copying and any(sign in output for sign in GARBLED):
        return copying[-1]
    return None

"""`dupctl backup`: back up tenant hosts, in parallel, each under its own lock.

duplicity runs on the host over SSH and pushes into its chroot over SFTP (the passphrase on
stdin). Then this server seals the new files: root:dup-H 0440, so the host can read but never
change them. A run that died leaves unsealed files: the next run removes what duplicity calls
incomplete (`cleanup --force`, here) and seals the rest before it starts, but only once the
host shows no duplicity of its sets still running (only dupctl may have died). See
docs/backups-design.md.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import shlex
import stat
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from agent import execute, remote
from agent.actions.host_sets import check, stable_output
from agent.config.load import HostConfig, Inventory, load_inventory
from agent.duplicity.backup import backup_command
from agent.duplicity.common import Selection, backup_name, environment
from agent.duplicity.prune import cleanup_command
from agent.errors import CommandFailed, DupstackError, HostBusy, KeyMismatch, UsageError
from agent.host_passphrase import read_host_passphrase
from agent.locks import host_lock, is_held
from agent.paths import ServerPaths
from agent.repository import backups_dir, server_repository, tenant_repository
from agent.runlog import RunRecord, open_log, read_status, stamp, write_status
from agent.schedule import crontab

logger = logging.getLogger(__name__)
FULL = 2**20  # bytes: less free space on the volume after a failed run means it filled up
Say = Callable[[str, str], None]  # (host, what it is doing)


@dataclass(frozen=True)
class BackupOptions:
    full: bool = False  # a full backup; else full only when due (full_if_older_than)
    jobs: int = 2  # hosts backed up at once
    retry_delay: int | None = None  # seconds between duplicity's attempts (its default: 30)
    missed: bool = False  # only hosts whose scheduled backup was missed (cron's catch-up)


@dataclass(frozen=True)
class Outcome:
    record: RunRecord
    error: DupstackError | None


def backup_hosts(
    paths: ServerPaths,
    names: Sequence[str],
    options: BackupOptions,
    ssh: remote.Ssh,
    say: Say,
) -> list[Outcome]:
    """Back up the inventory's hosts `names` (all of them if empty); one failure stops no other."""
    if options.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {options.jobs}")
    inventory = load_inventory(paths)
    hosts = [inventory.host(name) for name in dict.fromkeys(names)] or [
        inventory.hosts[name] for name in sorted(inventory.hosts)
    ]
    if options.missed:
        hosts = [host for host in hosts if _missed(paths, host)]
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        runs = [
            pool.submit(backup_host, paths, inventory, host, options, ssh, say) for host in hosts
        ]
        return [run.result() for run in runs]


def _missed(paths: ServerPaths, host: HostConfig) -> bool:
    """The host's scheduled run was missed and no run of it is going on now."""
    record = read_status(paths, host.name)
    last = datetime.fromisoformat(record["start"]) if record else None
    return crontab.missed(host, last, datetime.now().astimezone()) and not is_held(paths, host.name)


def backup_host(
    paths: ServerPaths,
    inventory: Inventory,
    host: HostConfig,
    options: BackupOptions,
    ssh: remote.Ssh,
    say: Say,
) -> Outcome:
    """One host's run; its outcome is recorded in its status file unless another run held it."""
    started = datetime.now(UTC)
    clock = time.monotonic()
    log: IO[str] | None = None
    error: DupstackError | None = None
    action = None
    earlier: list[str] = []  # unsealed before this run: not its own
    try:
        with host_lock(paths, host.name) as note, open_log(paths, host.name, started) as log:
            earlier = unsealed(paths, host)
            if note:
                say(host.name, note)
                log.write(f"dupctl: {note}\n")
            action = _run(paths, inventory, host, options, ssh, say, log)
    except DupstackError as failed:
        error = failed
    except Exception as bug:  # one host's surprise must not stop the others
        logger.debug("%s: backup failed", host.name, exc_info=True)
        error = DupstackError(f"{host.name}: {bug!r}", hint="rerun with --debug, report it")
    if error is not None and log is not None:
        action = action or _kind(sorted(set(unsealed(paths, host)) - set(earlier)))
        with open(log.name, "a") as tail:
            tail.write(f"dupctl: error: {error.message}\n")
    record = RunRecord(
        host=host.name,
        start=stamp(started),
        end=stamp(datetime.now(UTC)),
        duration=round(time.monotonic() - clock, 1),
        action=action,
        result="failed" if error else "ok",
        error=error.message.splitlines()[0] if error else None,
        log=log.name if log else None,
    )
    if log is not None or not isinstance(error, HostBusy):  # the lock holder records its own
        write_status(paths, record)
    say(host.name, f"failed: {record.error}" if error else f"ok ({action}, {record.duration} s)")
    return Outcome(record, error)


def _run(
    paths: ServerPaths,
    inventory: Inventory,
    host: HostConfig,
    options: BackupOptions,
    ssh: remote.Ssh,
    say: Say,
    log: IO[str],
) -> str | None:
    """Clean up, back up on the host, seal; the kind of set made (full or incremental)."""
    if not backups_dir(paths, host).is_dir():
        raise UsageError(
            f"{host.name}: {backups_dir(paths, host)} does not exist",
            hint=f"dupctl host add {host.name} --address {host.address} sets it up",
        )
    passphrase = read_host_passphrase(paths, host.name)
    say(host.name, f"connecting to {host.address}")
    argv = stable_output(
        backup_command(
            tenant_repository(inventory, host),
            Selection(host.paths, host.excludes),
            full=options.full,
            full_if_older_than=None if options.full else host.full_if_older_than,
            volsize=host.volsize,
            retry_delay=options.retry_delay,
        )
    )
    with remote.session(ssh, host) as tenant:
        _refuse_if_running(tenant, host)  # its files are not leftovers: never clean them up
        if leftovers := unsealed(paths, host):
            say(host.name, f"cleaning up {len(leftovers)} file(s) of an unfinished run")
            cleanup = cleanup_command(server_repository(paths, host))
            log.write(f"dupctl: {shlex.join(cleanup)}\n")
            done = execute.run(cleanup, env=environment(passphrase))
            log.write(done.stdout.decode(errors="replace"))
            seal(paths, host)  # what cleanup kept are complete sets
        say(host.name, f"backing up {' '.join(host.paths)}")
        log.write(f"dupctl: on {host.name}: {shlex.join(argv)}\n")
        done = tenant.run(argv, secret=passphrase, log=log, ok_codes=range(256))
    _check(paths, host, done.exit_code, done.stderr, log.name)
    return _kind(seal(paths, host))


def _refuse_if_running(tenant: remote.Session, host: HostConfig) -> None:
    """HostBusy if a duplicity of the host's sets runs there (dupctl killed or cut off)."""
    # [-]: the pattern never matches itself (sh, sudo); no match: exit 0, not 1. --ns: only
    # processes in this session's network namespace (the test fleet's hosts share pids)
    pattern = f"[-]-name[ =]{backup_name(host.name)}( |$)"
    pgrep = 'pgrep --ns $$ --nslist net -f "$1" || [ $? = 1 ]'
    found = tenant.run(("sh", "-c", pgrep, "sh", pattern))
    if pids := found.stdout.split():
        raise HostBusy(
            f"{host.name}: duplicity (pid {', '.join(pids)}) still works on its sets there: "
            "a backup whose dupctl was killed or cut off, or a restore",
            hint=f"let it end, or stop it (on {host.name}: kill {' '.join(pids)}), then rerun; "
            "nothing is cleaned up until then",
        )


def seal(paths: ServerPaths, host: HostConfig) -> list[str]:
    """Make every file the host's account still owns root:dup-H 0440; their names."""
    account = pwd.getpwnam(host.sftp_user)
    names = unsealed(paths, host)
    for name in names:
        file = backups_dir(paths, host) / name
        os.chown(file, 0, account.pw_gid, follow_symlinks=False)
        os.chmod(file, 0o440)
    return names


def unsealed(paths: ServerPaths, host: HostConfig) -> list[str]:
    """Regular files in the host's backups folder that its account still owns: what an
    unfinished run wrote (or is still writing)."""
    try:
        uid = pwd.getpwnam(host.sftp_user).pw_uid
        entries = list(os.scandir(backups_dir(paths, host)))
    except (KeyError, FileNotFoundError):
        return []
    return sorted(
        entry.name
        for entry in entries
        if (info := entry.stat(follow_symlinks=False)).st_uid == uid and stat.S_ISREG(info.st_mode)
    )


def _kind(names: Sequence[str]) -> str | None:
    """full or incremental, from the names of a set's files (duplicity-full.*, duplicity-inc.*)."""
    if any(name.startswith("duplicity-full.") for name in names):
        return "full"
    return "incremental" if any(name.startswith("duplicity-inc.") for name in names) else None


def _check(paths: ServerPaths, host: HostConfig, code: int, stderr: str, log: str) -> None:
    """Raise duplicity's failure as one line naming the host, with what to do (0: ok)."""
    volume = os.statvfs(backups_dir(paths, host))
    free = volume.f_bavail * volume.f_frsize
    if code and "Bad session key" in stderr:  # exit 31, or 1 when the cache's check hits it
        raise KeyMismatch(
            f"{host.name}: wrong passphrase: it does not decrypt {host.name}'s earlier sets "
            "(gpg: Bad session key); nothing was backed up",
            hint=f"the stack secret {paths.passphrase_file} is not the one they were made "
            "with: `dupctl init` restores it from this volume's escrow",
        )
    if code and free < FULL:  # a failed upload keeps its part (the host cannot delete it)
        raise CommandFailed(
            f"{host.name}: the backup volume {paths.mount_point} is full ({free} bytes free): "
            f"duplicity exited {code}",
            hint="free space (dupctl prune) or grow the volume, then rerun; earlier sets are "
            f"intact and the next run removes the unfinished one; log: {log}",
        )
    try:  # GnuPG's log ends with a ===== line: the line before says what happened
        check(host.name, code, re.sub(r"(?m)^=====.*$", "", stderr))
    except DupstackError as error:
        error.hint = error.hint or f"see {log}; the next run removes the unfinished set"
        raise

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
import shlex
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from agent import execute, preload, quota, remote, stop
from agent.config.load import HostConfig, Inventory, load_inventory
from agent.duplicity.backup import backup_command
from agent.duplicity.common import backup_name
from agent.duplicity.exit_codes import CACHE_DAMAGED
from agent.duplicity.prune import cleanup_command
from agent.errors import (
    DupstackError,
    HookFailed,
    HostBusy,
    HostNotReady,
    RemoteCommandFailed,
    UsageError,
    VolumeReadOnly,
    read_only_volume,
)
from agent.execute import ANY_EXIT
from agent.hooks import HostRun
from agent.host import HostContext
from agent.locks import host_lock, is_held
from agent.paths import ServerPaths
from agent.runlog import RunRecord, open_log, read_status, stamp, write_status
from agent.schedule import crontab
from agent.screening import SKEW_TOLERANCE
from agent.sealing import seal, set_kind, unsealed

logger = logging.getLogger(__name__)
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
    hosts = inventory.chosen_hosts(names)
    if options.missed:
        hosts = [host for host in hosts if _missed(paths, host)]
    if not hosts:
        return []
    preload.want("agent.metrics")  # refreshed after each host: prometheus_client, ~40 ms
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
    run: HostRun | None = None
    error: DupstackError | None = None
    earlier: list[str] = []  # unsealed before this run: not its own
    try:
        with host_lock(paths, host.name) as note, open_log(paths, host.name, started) as log:
            earlier = unsealed(paths, host)
            if note:
                say(host.name, note)
                log.write(f"dupctl: {note}\n")
            run = HostRun(HostContext.of(paths, inventory, host), log)
            try:
                run.action = _run(run, options, ssh, say)
            except DupstackError as failed:  # before or without a session to the host
                run.error = failed
                run.dispatch("after_failure")
                raise
            except Exception as bug:  # told as the failure it is, never as a success
                run.error = DupstackError(f"{host.name}: {bug!r}")
                run.dispatch("after_failure")
                raise
            finally:
                run.dispatch("always")
    except DupstackError as failed:
        error = failed
    except Exception as bug:  # one host's surprise must not stop the others
        logger.debug("%s: backup failed", host.name, exc_info=True)
        error = DupstackError(f"{host.name}: {bug!r}", hint="rerun with --debug, report it")
    action = run.action if run else None
    if error is not None and log is not None:
        action = action or set_kind(sorted(set(unsealed(paths, host)) - set(earlier)))
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
        hooks=[outcome.as_record() for outcome in run.outcomes] if run else [],
        quarantined=run.quarantined if run else [],
    )
    if log is not None or not isinstance(error, HostBusy):  # the lock holder records its own
        write_status(paths, record)
        from agent import metrics  # preloaded: see backup_hosts

        try:
            metrics.refresh(paths, inventory)
        except DupstackError as failed:  # the run's outcome stands
            say(host.name, f"warning: {failed.message}")
    say(host.name, f"failed: {record.error}" if error else f"ok ({action}, {record.duration} s)")
    for hook in record.hooks:
        if hook["result"] == "failed" and not error:
            say(host.name, f"warning: {hook['phase']} hook {hook['hook']} failed: {hook['error']}")
    return Outcome(record, error)


def _run(run: HostRun, options: BackupOptions, ssh: remote.Ssh, say: Say) -> str | None:
    """Clean up, hooks before, back up on the host, seal, hooks after success; the kind of
    set made (full or incremental)."""
    context = run.context
    host = context.host
    if not context.folder.is_dir():
        raise UsageError(
            f"{host.name}: {context.folder} does not exist",
            hint=f"dupctl host add {host.name} --address {host.address} sets it up",
        )
    if stop.REQUESTED.is_set():  # SIGTERM while other hosts ran: this one never starts
        raise stop.stopped(f"{host.name} was not backed up")
    if context.read_only():  # before anything: each step would fail, slowly or unclearly
        raise read_only_volume(context.paths.mount_point)
    say(host.name, f"connecting to {host.address}")
    argv = backup_command(
        context.on_host,
        context.selection,
        full=options.full,
        full_if_older_than=None if options.full else host.full_if_older_than,
        volsize=host.volsize,
        concurrency=host.concurrency,
        compression=host.compression,
        retry_delay=options.retry_delay,
    )
    with remote.session(ssh, host) as tenant:
        run.tenant = tenant
        try:
            try:
                kind = _back_up(run, argv, say, lambda: _stop(ssh, host, context.folder))
            except BaseException as failed:  # the after hooks still have the session
                run.error = (
                    failed
                    if isinstance(failed, DupstackError)
                    else DupstackError(f"{host.name}: {failed!r}")
                )
                run.dispatch("after_failure")
                run.dispatch("always")
                raise
            run.dispatch("after_success")
            run.dispatch("always")
        finally:
            run.tenant = None  # closed from here on: hooks that need the host have no steps
    return kind


def _back_up(run: HostRun, argv: tuple[str, ...], say: Say, stop: Callable[[], None]) -> str | None:
    """Inside the host's session: clean up, before hooks, duplicity (in its write window,
    watched for its quota), screen, seal; the set's kind."""
    context, log, tenant = run.context, run.log, run.tenant
    assert tenant is not None
    host, paths = context.host, context.paths
    _preflight(tenant, host, context.on_host.archive_dir)
    if quota.is_open(context.folder):  # a killed run left it open; nothing of it runs now
        quota.close(context.folder, host.sftp_user)
    context.private_caches()  # here; on the host, by the preflight
    notice = lambda line: say(host.name, line)  # noqa: E731
    run.quarantined += context.screen(unsealed(paths, host), notice)  # planted, or half-written
    if leftovers := unsealed(paths, host):
        say(host.name, f"cleaning up {len(leftovers)} file(s) of an unfinished run")
        cleanup = cleanup_command(context.here)
        log.write(f"dupctl: {shlex.join(cleanup)}\n")
        execute.run(cleanup, secret=context.passphrase, log=log)
        seal(paths, host)  # what cleanup kept are complete sets
    if failed := [o for o in run.dispatch("before") if o.result == "failed"]:
        what = "the command in hooks.before" if failed[0].hook == "commands" else failed[0].hook
        raise HookFailed(
            f"{host.name}: before hook {failed[0].hook} failed: {failed[0].error}; "
            "nothing was backed up",
            hint=f"{failed[0].hint or f'fix {what} of {host.name}'}; log: {log.name}",
        )
    reserve = context.inventory.reserve
    held, room = quota.tree_usage(context.quarantine), context.room()
    if refusal := quota.over(host.name, context.folder, room, reserve, held):
        raise refusal
    say(host.name, f"backing up {' '.join(context.selection.paths)}")
    log.write(f"dupctl: on {host.name}: {shlex.join(argv)}\n")
    preload.while_waiting()
    stopped: DupstackError | None = None
    with (
        quota.write_window(context.folder, host.sftp_user),
        quota.watchdog(host.name, context.folder, room, reserve, stop, held) as exceeded,
    ):
        try:
            done = tenant.run(
                argv, secret=context.passphrase, log=log, ok_codes=ANY_EXIT, stable=True
            )
            if done.exit_code and CACHE_DAMAGED in done.output and exceeded() is None:
                # only a copy of the sets' manifests and signatures: dropped, rebuilt, once
                say(host.name, "its duplicity cache disagrees with its sets: rebuilt from them")
                log.write("dupctl: the host's cache disagrees with its sets: dropped, again\n")
                cache = f"{context.on_host.archive_dir}/{context.on_host.name}"
                tenant.run(("rm", "-rf", "--", cache))
                done = tenant.run(
                    argv, secret=context.passphrase, log=log, ok_codes=ANY_EXIT, stable=True
                )
        except RemoteCommandFailed:  # killed by the watchdog (exit -1), or cut off
            if (stopped := exceeded()) is None:
                raise
    stopped = stopped or exceeded()  # the watchdog stopped it (whatever its exit code)
    if stopped is None and done.exit_code == 0:  # a failed run is its own error, below
        stopped = quota.over(host.name, context.folder, room, reserve, held)
    if isinstance(stopped, VolumeReadOnly):  # nothing can go: the next run cleans up
        log.write(f"dupctl: stopped: {stopped.message}\n")
        raise stopped
    if stopped:
        # What this run wrote takes the room of others: it goes (it is all unsealed now).
        for name in unsealed(paths, host):
            (context.folder / name).unlink(missing_ok=True)
        stopped.message += "; what this run wrote was removed, nothing was backed up"
        log.write(f"dupctl: stopped: {stopped.message}\n")
        raise stopped
    context.check(done, log=log.name, pushed=True)
    run.quarantined += context.screen(unsealed(paths, host), notice)
    kind = set_kind(seal(paths, host))
    run.action = kind
    return kind


def _stop(ssh: remote.Ssh, host: HostConfig, folder: Path) -> None:
    """Stop the host writing: its folder closed and its SFTP sessions ended here (whatever
    the host does), then its duplicity stopped there, over a connection of its own (the
    run's is busy waiting for it)."""
    quota.close(folder, host.sftp_user)
    try:
        remote.run(ssh, host, _its_duplicity("pkill", host))
    except DupstackError as error:  # it may be ending by itself: the run's error says the rest
        logger.warning("%s: could not stop duplicity: %s", host.name, error.message)


def _its_duplicity(tool: str, host: HostConfig) -> tuple[str, ...]:
    """`pgrep` or `pkill` of the host's duplicity of its sets, as argv for the host."""
    # [-]: the pattern never matches itself (sh, sudo); no match: exit 0, not 1. --ns: only
    # processes in this session's network namespace (the test fleet's hosts share pids)
    pattern = f"[-]-name[ =]{backup_name(host.name)}( |$)"
    return ("sh", "-c", f'{tool} --ns $$ --nslist net -f "$1" || [ $? = 1 ]', "sh", pattern)


def _preflight(tenant: remote.Session, host: HostConfig, cache: str) -> None:
    """In one command on the host (each costs a round trip): HostBusy if a duplicity of its
    sets runs there (dupctl killed or cut off: its files are not leftovers, never cleaned
    up); HostNotReady if its clock is off by more than screening.SKEW_TOLERANCE (its sets
    would carry skewed times: fulls every run, prune by wrong ages); and its duplicity cache
    made root's alone (what an earlier run or release left readable)."""
    pgrep = _its_duplicity("pgrep", host)
    script = f'{pgrep[2]} && date "+@%s" && {{ [ ! -e "$2" ] || chmod -R go= -- "$2"; }}'
    said = tenant.run(("sh", "-c", script, "sh", pgrep[4], cache)).stdout.split()
    pids = [word for word in said if not word.startswith("@")]
    if pids:
        raise HostBusy(
            f"{host.name}: duplicity (pid {', '.join(pids)}) still works on its sets there: "
            "a backup whose dupctl was killed or cut off, or a restore",
            hint=f"let it end, or stop it (on {host.name}: kill {' '.join(pids)}), then rerun; "
            "nothing is cleaned up until then",
        )
    there = datetime.fromtimestamp(int(said[-1][1:]), UTC)
    skew = there - datetime.now(UTC)
    if abs(skew) > SKEW_TOLERANCE:
        hours = skew.total_seconds() / 3600
        raise HostNotReady(
            f"{host.name}'s clock is {abs(hours):.1f} h {'ahead' if hours > 0 else 'behind'} "
            f"of this server's ({there:%Y-%m-%d %H:%M} UTC there): nothing was backed up",
            hint=f"set {host.name}'s clock (NTP: timedatectl set-ntp true), then rerun",
        )

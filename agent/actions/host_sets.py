"""A host's backup sets, for list, restore, verify and prune: where they are, how duplicity
reads them (here as file://, or from the host over SFTP), and its failures in plain words."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent import execute
from agent.config.load import HostConfig, Inventory, load_inventory
from agent.duplicity.common import STABLE_OUTPUT_ENV, Repository, Selection, environment
from agent.errors import (
    BackupDamaged,
    CommandFailed,
    DupstackError,
    KeyMismatch,
    NotInBackup,
    TargetNotEmpty,
    UsageError,
)
from agent.host_passphrase import read_host_passphrase
from agent.paths import ServerPaths
from agent.repository import backups_dir, server_repository, tenant_repository

ANY_EXIT = range(256)  # duplicity's exit code is read by check(), not by the runner


@dataclass(frozen=True)
class HostSets:
    """An inventory host with its passphrase, and its sets as seen from here and from it."""

    paths: ServerPaths
    inventory: Inventory
    host: HostConfig
    passphrase: str

    @property
    def here(self) -> Repository:
        return server_repository(self.paths, self.host)

    @property
    def on_host(self) -> Repository:
        return tenant_repository(self.inventory, self.host)

    @property
    def selection(self) -> Selection:
        return Selection(self.host.paths, self.host.excludes)

    def has_backup(self) -> bool:
        return any(backups_dir(self.paths, self.host).glob("duplicity-full.*.manifest*"))

    def run_here(self, argv: tuple[str, ...]) -> str:
        """Run duplicity on this server with the passphrase in its environment; its stdout."""
        done = execute.run(argv, env=environment(self.passphrase), ok_codes=ANY_EXIT)
        output = done.stdout.decode(errors="replace")
        check(self.host.name, done.returncode, output + done.stderr.decode(errors="replace"))
        return output


def stable_output(argv: tuple[str, ...]) -> tuple[str, ...]:
    """`argv` for a tenant host: through env(1), for duplicity's stable output (UTC, English)."""
    return ("env", *(f"{name}={value}" for name, value in STABLE_OUTPUT_ENV.items()), *argv)


def open_sets(paths: ServerPaths, name: str, *, need_backup: bool = True) -> HostSets:
    """Inventory host `name` and its sets; NotInBackup if `need_backup` and it has none yet."""
    inventory = load_inventory(paths)
    host = inventory.host(name)
    sets = HostSets(paths, inventory, host, read_host_passphrase(paths, name))
    if need_backup and not sets.has_backup():
        raise NotInBackup(
            f"{name} has no backup yet in {backups_dir(paths, host)}",
            hint=f"make one with `dupctl backup {name}`",
        )
    return sets


def check(host: str, code: int, output: str) -> None:
    """Raise what duplicity's exit `code` (and `output`) means for `host`'s backups; 0: ok."""
    if code == 0:
        return
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    last = lines[-1] if lines else f"exit {code}"
    error: DupstackError
    if code == 11:
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
    elif code == 31:
        error = KeyMismatch(
            f"the passphrase does not decrypt {host}'s backups ({last})",
            hint="the stack secret /etc/duplicity/passphrase is not the one they were made "
            "with: `dupctl init` restores it from this volume's escrow",
        )
    elif code == 30 and "chains found" in output:
        error = NotInBackup(f"{host} has no complete backup ({last})")
    else:
        error = CommandFailed(f"duplicity exited {code} for {host}: {last}")
    raise error

"""One tenant host as every action sees it: its settings, its passphrase, and its sets on the
volume, read here as file:// or by the host's own duplicity over SFTP. Actions get it from
`open_host` (or `HostContext.of`); none builds it by hand."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agent import execute, files, quota, screening
from agent.config.load import DUMP_SPOOL, HostConfig, Inventory, load_inventory
from agent.duplicity.common import Repository, Selection
from agent.duplicity.exit_codes import CACHE_DAMAGED, interpret
from agent.errors import HostBusy, NotInBackup
from agent.execute import ANY_EXIT, Result, Runner
from agent.host_passphrase import read_host_passphrase
from agent.locks import host_lock
from agent.paths import ServerPaths
from agent.repository import backups_dir, server_repository, tenant_repository
from agent.runlog import stamp
from agent.sealing import sealed, unsealed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostContext:
    """An inventory host with its passphrase, and its sets as seen from here and from it."""

    paths: ServerPaths
    inventory: Inventory
    host: HostConfig
    passphrase: str

    @classmethod
    def of(cls, paths: ServerPaths, inventory: Inventory, host: HostConfig) -> HostContext:
        return cls(paths, inventory, host, read_host_passphrase(paths, host.name))

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def here(self) -> Repository:
        return server_repository(self.paths, self.host)

    @property
    def on_host(self) -> Repository:
        return tenant_repository(self.inventory, self.host)

    @property
    def selection(self) -> Selection:
        """The host's paths, and the spool its databases are dumped into (agent/dumps.py)
        and its metadata recorded in (agent/metadata.py), which no exclude may hide."""
        return Selection(self.host.paths, self.host.excludes, kept=(DUMP_SPOOL,))

    @property
    def folder(self) -> Path:
        return backups_dir(self.paths, self.host)

    def room(self) -> quota.Limit:
        """The most the host's sets may take: its quota, or its share (agent/quota.py)."""
        return quota.limit(self.name, self.inventory.quotas, self.folder, self.inventory.reserve)

    def has_backup(self) -> bool:
        return any(self.folder.glob("duplicity-full.*.manifest*"))

    def volume_free(self) -> int:
        """Bytes left for the host's sets on the volume."""
        volume = os.statvfs(self.folder)
        return volume.f_bavail * volume.f_frsize

    def read_only(self) -> bool:
        """Whether the volume takes no writes now (mounted so, or gone so after an error)."""
        return files.read_only(self.folder)

    def check(self, done: Result, *, log: str | None = None, pushed: bool = False) -> None:
        """Raise what duplicity's exit means (agent/duplicity/exit_codes); `pushed`: the run
        wrote to the volume, so a full volume is a possible cause."""
        interpret(
            self.name,
            done,
            passphrase_file=self.paths.passphrase_file,
            log=log,
            volume_free=self.volume_free() if pushed and done.exit_code else None,
            volume=self.paths.mount_point,
            volume_read_only=bool(pushed and done.exit_code and self.read_only()),
        )

    def private_caches(self, tenant: Runner | None = None) -> None:
        """duplicity's caches (plaintext manifests and signatures) root's alone, here and on
        the host: what an earlier run or release left readable is closed before this one.
        Here, the archive folder itself and this host's cache in it (not every host's)."""
        top = Path(self.here.archive_dir)
        if top.is_dir() and (mode := stat.S_IMODE(top.stat().st_mode)) & 0o077:
            top.chmod(mode & 0o700)
        files.lock_down_modes(top / self.here.name)
        if tenant is not None:
            tighten = '[ ! -e "$1" ] || chmod -R go= -- "$1"'
            tenant.run(("sh", "-c", tighten, "sh", self.on_host.archive_dir))

    def _drop_manifests_there(self, tenant: Runner, argv: tuple[str, ...]) -> None:
        """_drop_manifests, in the host's cache: best effort (the run goes on if it fails)."""
        drop = '[ ! -d "$1" ] || exec find "$1" -maxdepth 1 -type f -name "*.manifest" -delete'
        done = tenant.run(("sh", "-c", drop, "sh", str(_cache_of(argv))), ok_codes=ANY_EXIT)
        if done.exit_code:
            logger.warning("%s: the cached manifests could not be dropped there: %s",
                           self.name, done.said(1) or f"exit {done.exit_code}")  # fmt: skip

    @property
    def quarantine(self) -> Path:
        """Where what this host's account added but may not join its history is moved."""
        return self.paths.volume_state_dir / "quarantine" / self.name

    def screen(self, names: list[str], say: Callable[[str], None]) -> list[str]:
        """Move what of `names` may not join the host's history to the quarantine
        (agent/screening.py); "NAME: why" of each."""
        if not names:
            return []
        folder = self.quarantine / stamp(datetime.now(UTC))
        refused = screening.screen(self.folder, names, sealed(self.paths, self.host),
                                   self.passphrase, folder)  # fmt: skip
        for item in refused:
            say(f"quarantined {item} (moved to {folder})")
        return [str(item) for item in refused]

    def run_here(self, argv: tuple[str, ...], env: Mapping[str, str] | None = None) -> str:
        """duplicity on this server with the host's passphrase (and `env`: an offsite
        target's credentials); its stdout (errors raised)."""
        self.private_caches()
        if argv[1] in READS:
            _drop_manifests(_cache_of(argv))
        done = execute.run(argv, secret=self.passphrase, ok_codes=ANY_EXIT, env=env)
        if done.exit_code and CACHE_DAMAGED in done.output:  # only a copy: rebuilt, once
            logger.warning("%s: duplicity's cache disagrees with the sets: dropped, rebuilt",
                           self.name)  # fmt: skip
            shutil.rmtree(_cache_of(argv), ignore_errors=True)
            done = execute.run(argv, secret=self.passphrase, ok_codes=ANY_EXIT, env=env)
        self.check(done)
        return done.stdout

    def run_on_host(self, tenant: Runner, argv: tuple[str, ...]) -> Result:
        """duplicity's read of the sets (READS) on the host, its passphrase on stdin; its exit
        told, never raised, for the caller to read. The host's cached manifests are dropped
        first, as run_here drops this server's."""
        assert argv[1] in READS, argv
        self._drop_manifests_there(tenant, argv)
        return tenant.run(argv, secret=self.passphrase, ok_codes=ANY_EXIT, stable=True)


# duplicity's actions that find the sets' volumes by the manifests in its cache. A damaged
# copy (emptied, cut short, another set's) restores nothing, fails with a traceback, or hangs
# duplicity 3.2.1 for good (verify: gpg blocked on a pipe it no longer reads), and a read of
# a missing path looks the same: dupctl drops them before each such run, and duplicity
# fetches them from the sets again (small: one gpg each; the signatures, large, stay).
READS = ("restore", "verify", "list-current-files")


def _drop_manifests(cache: Path) -> None:
    for manifest in cache.glob("*.manifest"):
        manifest.unlink(missing_ok=True)


def _cache_of(argv: tuple[str, ...]) -> Path:
    """The cache a duplicity argv uses (common.repository_flags: --name, --archive-dir)."""
    return Path(argv[argv.index("--archive-dir") + 1]) / argv[argv.index("--name") + 1]


def open_host(paths: ServerPaths, name: str, *, need_backup: bool = True) -> HostContext:
    """Inventory host `name` in context; NotInBackup if `need_backup` and it has none yet."""
    inventory = load_inventory(paths)
    context = HostContext.of(paths, inventory, inventory.host(name))
    # What a run left (not while one may still write: its lock held, or its folder open)
    if unsealed(paths, context.host) and not quota.is_open(context.folder):
        try:
            with host_lock(paths, name):
                context.screen(unsealed(paths, context.host), lambda line: None)
        except HostBusy:
            pass
    if need_backup and not context.has_backup():
        raise NotInBackup(
            f"{name} has no backup yet in {context.folder}",
            hint=f"make one with `dupctl backup {name}`",
        )
    return context

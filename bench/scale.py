"""Bench cases of scale: four hosts at once against one after another, a one-file restore
through dupctl against the same duplicity restore run directly on the server, and one host
with a million small files (peak memory of duplicity on the host and of dupctl on the
server, and the incremental's time).

Each group has a fleet of its own (bench/tenants.py). The many-files cases run once: a full
of a million files takes minutes, and the incremental needs that full (it runs right after
it, in the same round, and refuses to count a full).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from agent.config.load import load_inventory
from agent.duplicity.restore import restore_command
from agent.paths import ServerPaths
from agent.repository import server_repository
from bench.cases import Context, DupctlBackupN, _FleetCase, register
from bench.dataset import BASE_MTIME, Dataset
from bench.measure import SECRET_FD, Command, Sample
from bench.tenants import DATA, acquire

FOUR = tuple(f"bench-q{index}" for index in range(1, 5))
RESTORER = "bench-rst1"
MANY = "bench-many1"
PER_FOLDER = 1000  # files per folder of the many-files tree
# sh reads the passphrase from the inherited fd ($0) into duplicity's environment: never argv
PASSPHRASE_FROM_FD = 'read -r PASSPHRASE < /proc/self/fd/"$0" && export PASSPHRASE && exec "$@"'  # noqa: S105


@register
class DupctlBackupFourSerial(DupctlBackupN):
    """Four hosts, each with its own dataset copy, one after another (`--jobs 1`)."""

    name = "dupctl-backup-4-serial"
    title = "dupctl backup --all --jobs 1 --full, 4 hosts one after another"
    baseline = "dupctl-backup-1"
    fleet_key = "four"
    hosts = FOUR
    max_hosts = 4
    jobs = 1


@register
class DupctlBackupFour(DupctlBackupFourSerial):
    """The same four hosts at once (`--jobs 4`): what parallel runs gain on this server."""

    name = "dupctl-backup-4"
    title = "dupctl backup --all --jobs 4 --full, 4 hosts at once"
    baseline = "dupctl-backup-4-serial"
    jobs = 4


class _RestoreCase(_FleetCase):
    """One small file of a host's full set, restored on the server; checked byte for byte."""

    fleet_key = "restore"
    hosts = (RESTORER,)
    max_hosts = 1
    path = ""  # the file, as the host has it
    at = ""  # the set's time, as --time takes it
    expected = b""

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        bench = self.fleet()
        if not any(bench.backups(RESTORER).glob("duplicity-full.*.manifest.gpg")):
            bench.dupctl("backup", RESTORER, "--full")  # once for both cases
        [entry] = json.loads(bench.dupctl("status", RESTORER, "--json"))
        self.at = entry["last_set"]
        relative = _one_small_file(ctx.dataset.root)
        self.path = f"{DATA}/{relative}"
        self.expected = (ctx.dataset.root / relative).read_bytes()

    def target(self, repeat: int) -> str:
        """The folder the repeat restores into, on the server."""
        return f"/root/bench-restore/{self.name}/{repeat}"

    def output_bytes(self, ctx: Context, repeat: int) -> int | None:
        folder = self.fleet().bs.path(self.target(repeat))
        restored = Path(f"{folder}{self.path}")
        if not restored.is_file() or restored.read_bytes() != self.expected:
            raise RuntimeError(f"{restored} is not {self.path} as the host has it")
        shutil.rmtree(folder)
        return len(self.expected)

    def source_bytes(self, ctx: Context) -> int | None:
        return len(self.expected)


@register
class DuplicityRestoreOne(_RestoreCase):
    """The duplicity command a one-file `dupctl restore` runs, run on the server directly:
    same repository, cache, time and path; the passphrase on an inherited fd."""

    name = "duplicity-restore-one"
    title = "duplicity restore --path-to-restore (one file) on the server, file://"

    def run(self, ctx: Context, repeat: int) -> Command:
        bench = self.fleet()
        host = load_inventory(ServerPaths.from_root(bench.bs.path("/"))).host(RESTORER)
        repository = server_repository(ServerPaths.from_root(Path("/")), host)  # as bs sees it
        target = f"{self.target(repeat)}{self.path}"
        bench.bs.path(target).parent.mkdir(parents=True)
        argv = restore_command(repository, target, path=self.path, time=self.at)
        return Command(
            bench.on_server(["sh", "-c", PASSPHRASE_FROM_FD, SECRET_FD, *argv]),
            secret=bench.passphrase(RESTORER).encode() + b"\n",
        )


@register
class DupctlRestoreOne(_RestoreCase):
    """`dupctl restore HOST --path P --time T --to DIR`: the same restore, plus what dupctl
    adds (the root-only landing folder, the metadata record restored and re-applied, the
    rename into place)."""

    name = "dupctl-restore-one"
    title = "dupctl restore --path (one file) --to DIR on the server"
    baseline = "duplicity-restore-one"

    def run(self, ctx: Context, repeat: int) -> Command:
        argv = ["dupctl", "restore", RESTORER, "--path", self.path, "--time", self.at,
                "--to", self.target(repeat)]  # fmt: skip
        return Command(self.fleet().on_server(argv))


def _one_small_file(root: Path) -> str:
    """A small file of the dataset's tree (the first in sorted order), relative to `root`."""
    for top, folders, names in os.walk(root / "tree"):
        folders.sort()
        if names:
            return str((Path(top) / sorted(names)[0]).relative_to(root))
    raise RuntimeError(f"no file under {root / 'tree'}")


def many_files(ctx: Context) -> Dataset:
    """`ctx.many_files` small text files (0-2 KiB) in folders of PER_FOLDER, made once per
    bench run beside the cases' folders; the same bytes and mtimes every time."""
    root = ctx.workdir.parent.parent / "many"
    count = ctx.many_files
    marker = root / ".complete"
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        line = b"dupstack many-files bench: a line of text that compresses like a config.\n"
        for index in range(count):
            folder = root / "tree" / f"d{index // PER_FOLDER:04d}"
            if index % PER_FOLDER == 0:
                folder.mkdir(parents=True)
            size = (index * 2654435761) % 2048  # spread over 0-2 KiB, deterministic
            fd = os.open(folder / f"f{index:07d}.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, (line * (size // len(line) + 1))[:size])
            finally:
                os.close(fd)
            os.utime(folder / f"f{index:07d}.txt", (BASE_MTIME, BASE_MTIME))
        marker.touch()
    total = sum(((index * 2654435761) % 2048) for index in range(count))
    return Dataset(root=root, files=count, bytes=total, small_files=count, small_bytes=total,
                   blob_bytes=0, log_bytes=0)  # fmt: skip


class _ManyFilesCase(_FleetCase):
    """A host whose backed-up folder holds `ctx.many_files` small files; one round."""

    fleet_key = "many"
    hosts = (MANY,)
    max_hosts = 1
    repeats: ClassVar[int | None] = 1
    data: Dataset | None = None

    def setup(self, ctx: Context) -> None:
        self.data = many_files(ctx)
        self.bench = acquire(self.fleet_key, self.data, self.max_hosts)
        self.bench.tenant(MANY)

    def source_bytes(self, ctx: Context) -> int | None:
        return self.data.bytes if self.data else None

    def summarize(
        self, ctx: Context, samples: Sequence[Sample], outputs: Sequence[int | None]
    ) -> None:
        [sample] = samples
        dupctl = f"{sample.tree_max_rss_kb / 1024:.0f} MB" if sample.tree_max_rss_kb else "-"
        ctx.notes["memory"] = (
            f"{ctx.many_files} files: the largest process on the host (duplicity) peaked at "
            f"{sample.extra_hwm_kb / 1024:.0f} MB RSS, dupctl on the server at {dupctl}"
        )


@register
class DupctlBackupMany(_ManyFilesCase):
    """`dupctl backup --full` of the many-files host."""

    name = "dupctl-backup-many"
    title = "dupctl backup --full, one host with many small files (see notes)"
    baseline = "dupctl-backup-1"

    def run(self, ctx: Context, repeat: int) -> Command:
        bench = self.fleet()
        bench.reset(MANY)
        return Command(bench.on_server(["dupctl", "backup", MANY, "--full"]),
                       extra_roots=bench.roots([MANY]))  # fmt: skip


@register
class DupctlIncrementalMany(_ManyFilesCase):
    """`dupctl backup` of the many-files host right after its full, with 0.5% of the files
    rewritten (a line appended): every file's metadata is read again, few files' data."""

    name = "dupctl-incremental-many"
    title = "dupctl backup (incremental, 0.5% of files changed), the many-files host"
    baseline = "dupctl-backup-many"
    before: frozenset[str] = frozenset()

    def run(self, ctx: Context, repeat: int) -> Command:
        bench = self.fleet()
        tree = bench.tenants[MANY].path(f"{DATA}/tree")
        for index in range(0, ctx.many_files, 200):  # 0.5%
            name = tree / f"d{index // PER_FOLDER:04d}" / f"f{index:07d}.txt"
            with open(name, "ab") as file:
                file.write(b"changed\n")
        os.sync()
        time.sleep(1.1)  # duplicity names sets by whole seconds: not the full's second
        self.before = frozenset(p.name for p in bench.backups(MANY).iterdir())
        return Command(bench.on_server(["dupctl", "backup", MANY]),
                       extra_roots=bench.roots([MANY]))  # fmt: skip

    def output_bytes(self, ctx: Context, repeat: int) -> int | None:
        new = [p for p in self.fleet().backups(MANY).iterdir() if p.name not in self.before]
        if not any(p.name.startswith("duplicity-inc.") for p in new) or any(
            p.name.startswith("duplicity-full") for p in new
        ):
            raise RuntimeError(f"not an incremental: {sorted(p.name for p in new)}")
        return sum(p.stat().st_size for p in new)

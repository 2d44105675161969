"""Benchmark cases, registered by name. See bench/README.md for how to add one.

A case is set up once, then measured `repeat` times (each repeat gets a fresh directory
`ctx.repeat_dir(i)`; what the backup writes goes to `ctx.out(i)`, whose size is reported),
then torn down. Only the Command returned by `run()` is timed.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from agent.config.load import load_inventory
from agent.duplicity.backup import S2K_COUNT, S2K_FLAGS
from agent.paths import ServerPaths
from agent.sealing import sealed
from bench.dataset import Dataset, Mutation, mutate
from bench.measure import SECRET_FD, Command, Sample, run_checked
from bench.offsite import (
    BUCKET,
    HOST,
    PREFIX,
    REPO,
    TARGET,
    MotoServer,
    clean_env,
    client_options,
    forget_pushes,
    write_root,
)
from bench.sshd import LoopbackSshd
from bench.tenants import DATA, BenchFleet, acquire, release

# gpg as duplicity 3.2 calls it for symmetric encryption (gpg defaults otherwise: AES-128,
# ZIP compression level 6), with the passphrase on an inherited fd, never in argv.
# The key stretching of dupstack's files (agent/duplicity/backup.py S2K_FLAGS), so that the
# practical limit pays for its one file what each of duplicity's does.
GPG_SYMMETRIC = (
    'gpg --batch --no-tty --quiet --pinentry-mode loopback --passphrase-fd "$3"'
    f" --s2k-count {S2K_COUNT} --force-mdc --symmetric"
)
VOLSIZE_MB = 200  # dupstack's inventory default (`volsize`), also duplicity's own


@dataclass
class Context:
    """What every case gets: the dataset, its own scratch dir, gpg home and passphrase."""

    dataset: Dataset
    workdir: Path
    gnupghome: Path
    passphrase: str
    duplicity: str
    notes: dict[str, Any] = field(default_factory=dict)  # facts for the report
    many_files: int = 1_000_000  # the many-files host's (bench/scale.py)

    def repeat_dir(self, repeat: int) -> Path:
        """Scratch dir of one repeat; the runner makes it empty before `run()`."""
        return self.workdir / f"repeat{repeat}"

    def out(self, repeat: int) -> Path:
        """Where a repeat's backup goes; its size is the case's reported output size."""
        return self.repeat_dir(repeat) / "out"

    def env(self) -> dict[str, str]:
        """Environment for gpg and duplicity: this run's GNUPGHOME and a private TMPDIR."""
        tmp = self.workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        return {"GNUPGHOME": str(self.gnupghome), "TMPDIR": str(tmp)}


class Case(ABC):
    """A named benchmark: `setup` once, `run` per repeat (timed), `teardown` once."""

    name: ClassVar[str]
    title: ClassVar[str]
    baseline: ClassVar[str | None] = None  # ratio of medians against this case, if it ran
    repeats: ClassVar[int | None] = None  # at most this many rounds (None: every round)

    def setup(self, ctx: Context) -> None:  # noqa: B027 - optional hook
        """Prepare what every repeat needs (unmeasured)."""

    def summarize(  # noqa: B027 - optional hook
        self, ctx: Context, samples: Sequence[Sample], outputs: Sequence[int | None]
    ) -> None:
        """Put figures derived from every repeat in `ctx.notes` (optional hook)."""

    def source_bytes(self, ctx: Context) -> int | None:
        """Bytes the case reads, when not the dataset's (for source MB/s)."""
        return None

    @abstractmethod
    def run(self, ctx: Context, repeat: int) -> Command:
        """Prepare repeat `repeat` (unmeasured) and return the command to measure."""

    def teardown(self, ctx: Context) -> None:  # noqa: B027 - optional hook
        """Stop what `setup` started; the runner removes `ctx.workdir` afterwards."""

    def output_bytes(self, ctx: Context, repeat: int) -> int | None:
        """Bytes the repeat wrote as its backup (default: the size of `ctx.out(repeat)`)."""
        return tree_size(ctx.out(repeat)) if ctx.out(repeat).exists() else None

    def inner_runs(self) -> list[float]:
        """Wall seconds of each run, for a case whose repeat runs its command several times
        and times each (bench/fixedcost.py); none for the others."""
        return []


CASES: dict[str, type[Case]] = {}


def register(cls: type[Case]) -> type[Case]:
    """Class decorator: make a case runnable by its `name` (run order = registration order)."""
    if cls.name in CASES:
        raise ValueError(f"duplicate bench case {cls.name!r}")
    CASES[cls.name] = cls
    return cls


def tree_size(path: Path) -> int:
    """Total size of the regular files under `path` (or of `path` itself)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def duplicity_command(
    ctx: Context,
    action: str,
    source: Path,
    url: str,
    archive: Path,
    extra: Sequence[str] = (),
    volsize: int = VOLSIZE_MB,
    s2k: Sequence[str] = S2K_FLAGS,
) -> Command:
    """`duplicity ACTION` as dupstack will run it: symmetric, PASSPHRASE in the environment,
    dupstack's S2K count (`s2k=()`: gpg-agent's calibrated one)."""
    argv = [*duplicity_argv(ctx, action, archive), "--volsize", str(volsize), *s2k, *extra,
            str(source), url]  # fmt: skip
    return Command(argv, env={**ctx.env(), "PASSPHRASE": ctx.passphrase})


def duplicity_argv(ctx: Context, action: str, archive: Path) -> list[str]:
    """`duplicity ACTION` with the bench's backup name, cache and temp dir."""
    return [ctx.duplicity, action, "--name", "bench", "--archive-dir", str(archive),
            "--tempdir", ctx.env()["TMPDIR"]]  # fmt: skip


def _pipeline(ctx: Context, repeat: int, middle: str, gpg_extra: str = "") -> Command:
    ctx.out(repeat).mkdir()
    script = f'set -o pipefail; tar -cf - -C "$1" . {middle}| {GPG_SYMMETRIC}{gpg_extra} -o "$2"'
    return Command(
        [
            "bash",
            "-c",
            script,
            "bench",
            str(ctx.dataset.root),
            str(ctx.out(repeat) / "backup.gpg"),
            SECRET_FD,
        ],
        env=ctx.env(),
        secret=ctx.passphrase.encode() + b"\n",
    )


@register
class TarGpg(Case):
    """The practical limit: one tar stream encrypted (and ZIP-compressed) by gpg."""

    name = "tar-gpg"
    title = "tar | gpg --symmetric"

    def run(self, ctx: Context, repeat: int) -> Command:
        return _pipeline(ctx, repeat, "")


@register
class TarGzipGpg(Case):
    """Compression in its own process (gzip -6); gpg then only encrypts."""

    name = "tar-gzip-gpg"
    title = "tar | gzip | gpg --symmetric -z 0"
    baseline = "tar-gpg"

    def run(self, ctx: Context, repeat: int) -> Command:
        return _pipeline(ctx, repeat, "| gzip -6 ", " --compress-algo none")


@register
class DuplicityFull(Case):
    """duplicity full to a local directory."""

    name = "duplicity-full"
    title = "duplicity full, file://"
    baseline = "tar-gpg"

    def run(self, ctx: Context, repeat: int) -> Command:
        out = ctx.out(repeat)
        return duplicity_command(
            ctx, "full", ctx.dataset.root, f"file://{out}", ctx.repeat_dir(repeat) / "archive"
        )


@register
class DuplicityIncremental(Case):
    """duplicity incremental after `mutate()`, on a copy of the dataset with one full backup.

    Every repeat starts from copies of the same full backup and its archive dir, so each one
    measures the same incremental; only the new files are counted as output.
    """

    name = "duplicity-incremental"
    title = "duplicity incremental after mutate, file://"
    baseline = "duplicity-full"
    s2k: ClassVar[tuple[str, ...]] = S2K_FLAGS
    source: Path
    base: Path
    mutation: Mutation
    before: set[str]

    def setup(self, ctx: Context) -> None:
        self.source = ctx.workdir / "data"
        subprocess.run(["cp", "-a", str(ctx.dataset.root), str(self.source)], check=True)
        self.base = ctx.workdir / "base"
        self.base.mkdir()
        full = duplicity_command(
            ctx, "full", self.source, f"file://{self.base / 'out'}", self.base / "archive"
        )
        started = time.time()
        run_checked(full, ctx.workdir / "setup-full.log")
        self.mutation = mutate(self.source, seed=1)
        ctx.notes["mutation"] = {
            "files": len(self.mutation.paths),
            "small_files": len(self.mutation.small_rewritten),
            "changed_bytes": self.mutation.changed_bytes,
        }
        # duplicity names sets by whole seconds: the incremental must start in a later one.
        time.sleep(max(0.0, int(started) + 2 - time.time()))

    def run(self, ctx: Context, repeat: int) -> Command:
        shutil.copytree(self.base / "out", ctx.out(repeat))
        shutil.copytree(self.base / "archive", ctx.repeat_dir(repeat) / "archive")
        self.before = {p.name for p in ctx.out(repeat).iterdir()}
        return duplicity_command(
            ctx,
            "incremental",
            self.source,
            f"file://{ctx.out(repeat)}",
            ctx.repeat_dir(repeat) / "archive",
            s2k=self.s2k,
        )

    def output_bytes(self, ctx: Context, repeat: int) -> int | None:
        new = [p for p in ctx.out(repeat).iterdir() if p.name not in self.before]
        return sum(p.stat().st_size for p in new)


@register
class DuplicityIncrementalS2kCalibrated(DuplicityIncremental):
    """The same incremental with gpg-agent's calibrated S2K count (duplicity's unless told,
    dupstack's before it set 65,536): each of the set's files pays for it."""

    name = "duplicity-incremental-s2k-calibrated"
    title = "duplicity incremental after mutate, file://, gpg's calibrated S2K count"
    baseline = "duplicity-incremental"
    s2k = ()


@register
class DuplicitySftpFull(Case):
    """duplicity full over SFTP (paramiko) to a throwaway sshd on 127.0.0.1.

    Both ends run on this machine: the CPU column includes sshd's share (server_cpu_s).
    """

    name = "duplicity-sftp-full"
    title = "duplicity full, sftp:// to local sshd"
    baseline = "duplicity-full"
    sshd: LoopbackSshd | None = None

    def setup(self, ctx: Context) -> None:
        self.sshd = LoopbackSshd(ctx.workdir / "sshd")
        self.sshd.start()

    def run(self, ctx: Context, repeat: int) -> Command:
        assert self.sshd is not None
        out = ctx.out(repeat)
        out.mkdir()
        return _with_extra_roots(
            duplicity_command(
                ctx,
                "full",
                ctx.dataset.root,
                self.sshd.url(out),
                ctx.repeat_dir(repeat) / "archive",
                extra=[f"--ssh-options={self.sshd.ssh_options()}"],
            ),
            (self.sshd.pid,),
        )

    def teardown(self, ctx: Context) -> None:
        if self.sshd is not None:
            self.sshd.stop()


def _with_extra_roots(command: Command, roots: Sequence[int]) -> Command:
    return Command(command.argv, command.env, command.secret, command.cwd, tuple(roots))


# ==========================================================================================
# dupctl cases: a backup server and tenant hosts of the test fleet (bench/tenants.py), each
# tenant with its own copy of the dataset at /home/bench. The server's and the tenants' sshd
# listeners are the Command's extra_roots: their session processes (the SFTP sessions on the
# server; on a tenant, the session running duplicity and gpg) are counted with the tree.
# ==========================================================================================

# Host names no test uses: dupctl looks for a running duplicity of a host's sets on the host
# (`pgrep -f -- "--name dupstack-NAME"`), and every fleet on this machine shares one PID
# namespace, so a test's web1 would make a bench web1 "busy", and the other way round.
ONE = "bench-web1"
N_HOSTS = (ONE, "bench-web2")
INCREMENTAL = "bench-inc1"  # in a fleet of its own: its dataset copy is mutated
INCREMENTAL_RAW = "bench-inc2"  # beside it, the same: for the same incremental without dupctl
SHARED_FLEET = "shared"  # duplicity-tenant-sftp-full, dupctl-backup-1, dupctl-backup-N


class _FleetCase(Case):
    """A case on fleet `fleet_key` (shared by the cases naming it), using tenants `hosts`."""

    fleet_key: ClassVar[str] = SHARED_FLEET
    hosts: ClassVar[tuple[str, ...]] = (ONE,)
    max_hosts: ClassVar[int] = 2  # the fleet's volume is sized for this many fulls
    bench: BenchFleet | None = None

    def setup(self, ctx: Context) -> None:
        self.bench = acquire(self.fleet_key, ctx.dataset, self.max_hosts)
        for name in self.hosts:
            self.bench.tenant(name)

    def fleet(self) -> BenchFleet:
        assert self.bench is not None, "setup() did not run"
        return self.bench

    def output_bytes(self, ctx: Context, repeat: int) -> int | None:
        """Size of the sets the run left on the server; raise unless each host got a full."""
        total = 0
        for name in self.hosts:
            files = sorted(self.fleet().backups(name).iterdir())
            if not any(f.name.startswith("duplicity-full.") for f in files):
                raise RuntimeError(f"{name}: no full set made: {[f.name for f in files]}")
            total += sum(f.stat().st_size for f in files)
        return total

    def teardown(self, ctx: Context) -> None:
        if self.bench is not None:
            ctx.notes["fleet"] = (
                f"{self.bench.fleet.dir} (removed): bs + {', '.join(self.bench.tenants)}; "
                f"volume {self.bench.volume_bytes // 2**20} MiB; hosts used: "
                f"{', '.join(self.hosts)}"
            )
            self.bench = None
            release(self.fleet_key)


@register
class DuplicityTenantFull(_FleetCase):
    """The command `dupctl backup bench-web1 --full` runs on the tenant, run there directly.

    Same host, account, chroot, keys, pins, argv, environment and passphrase-on-stdin as
    dupctl's run, started with nsenter instead of over SSH: dupctl-backup-1 / this is what
    dupctl adds (its start-up, the SSH session, locking, sealing, status and log).
    """

    name = "duplicity-tenant-sftp-full"
    title = "duplicity full on a tenant, sftp:// into its chroot (dupctl's argv)"
    baseline = "duplicity-sftp-full"

    def run(self, ctx: Context, repeat: int) -> Command:
        bench = self.fleet()
        bench.reset(ONE)
        bench.open_window(ONE)
        argv = bench.on_tenant(ONE, bench.tenant_argv(ONE, full=True), SECRET_FD)
        return Command(
            argv,
            secret=bench.passphrase(ONE).encode() + b"\n",
            extra_roots=bench.roots([ONE]),
        )


@register
class DupctlBackupOne(_FleetCase):
    """`dupctl backup bench-web1 --full` on the server: duplicity on the host over SSH."""

    name = "dupctl-backup-1"
    title = "dupctl backup --full, one host"
    baseline = "duplicity-tenant-sftp-full"

    def run(self, ctx: Context, repeat: int) -> Command:
        bench = self.fleet()
        bench.reset(ONE)
        return Command(
            bench.on_server(["dupctl", "backup", ONE, "--full"]),
            extra_roots=bench.roots([ONE]),
        )

    def summarize(
        self, ctx: Context, samples: Sequence[Sample], outputs: Sequence[int | None]
    ) -> None:
        """The server's CPU per GB received: dupctl's own tree and the SFTP sessions under the
        server's sshd (the first extra root); the tenant's session (duplicity, gpg) apart."""
        server, tenant = [], []
        for sample, size in zip(samples, outputs, strict=True):
            if size:
                gigabytes = size / 1e9
                server.append((sample.user_s + sample.sys_s + sample.root_cpu_s[0]) / gigabytes)
                tenant.append(sum(sample.root_cpu_s[1:]) / gigabytes)
        if server:
            ctx.notes["server CPU"] = (
                f"{statistics.median(server):.2f} CPU s per GB received on the server (dupctl "
                f"and the SFTP sessions), {statistics.median(tenant):.2f} CPU s per GB on the "
                "tenant (duplicity, gpg, ssh): bench/README.md's hosts-per-server model"
            )

    def output_bytes(self, ctx: Context, repeat: int) -> int | None:
        size = super().output_bytes(ctx, repeat)
        bench = self.fleet()
        expected = shlex.join(bench.duplicity_argv(ONE, full=True))
        if (ran := bench.last_remote_argv(ONE)) != expected:  # else the baseline is another
            raise RuntimeError(f"dupctl ran {ran!r} on {ONE}, not {expected!r}")
        return size


@register
class DupctlIncrementalOne(_FleetCase):
    """`dupctl backup bench-inc1` after `mutate()`: an incremental onto one full.

    Its own fleet (bs + bench-inc1). Set-up makes the full with dupctl (unmeasured), keeps its
    sets (as hard links, on the volume outside the chroot) and the host's cache, then mutates
    the host's copy. Every repeat starts from those sets and that cache: the same incremental
    each time; only the new files are counted as output.
    """

    name = "dupctl-incremental-1"
    title = "dupctl backup (incremental after mutate), one host"
    baseline = "dupctl-backup-1"
    fleet_key = "incremental"
    hosts = (INCREMENTAL,)
    before: set[str]

    @property
    def base(self) -> str:
        """Where the host's full waits between repeats (on the volume, outside its chroot)."""
        return f"/mnt/vdb/bench-base-{self.hosts[0]}"

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        bench, name = self.fleet(), self.hosts[0]
        started = time.time()
        bench.dupctl("backup", name, "--full")
        base = bench.bs.path(self.base)
        base.mkdir()
        for file in bench.backups(name).iterdir():  # sealed: root:dup-NAME 0440
            file.rename(base / file.name)
        shutil.copytree(bench.cache(name), ctx.workdir / "cache", symlinks=True)
        mutation = mutate(bench.tenants[name].path(DATA), seed=1)
        ctx.notes.setdefault(
            "mutation",
            {
                "files": len(mutation.paths),
                "small_files": len(mutation.small_rewritten),
                "changed_bytes": mutation.changed_bytes,
            },
        )
        os.sync()
        # duplicity names sets by whole seconds: the incremental must start in a later one.
        time.sleep(max(0.0, int(started) + 2 - time.time()))

    def restore_base(self, ctx: Context) -> None:
        """The host's sets back to its full alone, and its cache to what the full left."""
        bench, name = self.fleet(), self.hosts[0]
        bench.reset(name)
        backups = bench.backups(name)
        for file in bench.bs.path(self.base).iterdir():
            os.link(file, backups / file.name)
        shutil.copytree(ctx.workdir / "cache", bench.cache(name), symlinks=True)
        os.sync()
        self.before = {p.name for p in backups.iterdir()}

    def run(self, ctx: Context, repeat: int) -> Command:
        self.restore_base(ctx)
        bench = self.fleet()
        return Command(
            bench.on_server(["dupctl", "backup", INCREMENTAL]),
            extra_roots=bench.roots([INCREMENTAL]),
        )

    def output_bytes(self, ctx: Context, repeat: int) -> int | None:
        size = self.new_incremental_bytes()
        bench = self.fleet()
        expected = shlex.join(bench.duplicity_argv(INCREMENTAL, full=False))
        if (ran := bench.last_remote_argv(INCREMENTAL)) != expected:  # the raw case runs that
            raise RuntimeError(f"dupctl ran {ran!r} on {INCREMENTAL}, not {expected!r}")
        return size

    def new_incremental_bytes(self) -> int:
        """Size of what the run added; raise unless it is one incremental (no full)."""
        folder = self.fleet().backups(self.hosts[0])
        new = [p for p in folder.iterdir() if p.name not in self.before]
        if not any(p.name.startswith("duplicity-inc.") for p in new) or any(
            p.name.startswith("duplicity-full") for p in new
        ):
            raise RuntimeError(f"not an incremental: {sorted(p.name for p in new)}")
        return sum(p.stat().st_size for p in new)


@register
class DuplicityTenantIncremental(DupctlIncrementalOne):
    """dupctl-incremental-1's command, run directly on a tenant like it (bench-inc2: the same
    dataset, mutation, full and cache), as duplicity-tenant-sftp-full runs dupctl-backup-1's:
    dupctl-incremental-1 minus this is dupctl's fixed cost per run, measured where it shows."""

    name = "duplicity-tenant-incremental"
    title = "duplicity incremental on a tenant, sftp:// into its chroot (dupctl's argv)"
    baseline = "duplicity-tenant-sftp-full"
    hosts = (INCREMENTAL_RAW,)

    def run(self, ctx: Context, repeat: int) -> Command:
        self.restore_base(ctx)
        bench = self.fleet()
        bench.open_window(INCREMENTAL_RAW)
        argv = bench.on_tenant(
            INCREMENTAL_RAW, bench.tenant_argv(INCREMENTAL_RAW, full=False), SECRET_FD
        )
        return Command(
            argv,
            secret=bench.passphrase(INCREMENTAL_RAW).encode() + b"\n",
            extra_roots=bench.roots([INCREMENTAL_RAW]),
        )

    def output_bytes(self, ctx: Context, repeat: int) -> int | None:
        return self.new_incremental_bytes()


@register
class DupctlBackupN(_FleetCase):
    """`dupctl backup --all --jobs 2 --full` of two tenants, each with its own dataset copy."""

    name = "dupctl-backup-N"
    title = f"dupctl backup --all --jobs {len(N_HOSTS)} --full, {len(N_HOSTS)} hosts"
    baseline = "dupctl-backup-1"
    hosts = N_HOSTS
    jobs: ClassVar[int] = len(N_HOSTS)

    def run(self, ctx: Context, repeat: int) -> Command:
        bench = self.fleet()
        if sorted(bench.tenants) != sorted(self.hosts):  # --all must mean these hosts
            raise RuntimeError(f"fleet has {sorted(bench.tenants)}, not {list(self.hosts)}")
        bench.reset(*self.hosts)
        argv = ["dupctl", "backup", "--all", "--jobs", str(self.jobs), "--full"]
        return Command(bench.on_server(argv), extra_roots=bench.roots(self.hosts))


# ==========================================================================================
# offsite cases: one host's set, a duplicity full of the dataset in OFFSITE_VOLSIZE_MB volumes,
# copied to moto's S3 on 127.0.0.1 (bench/offsite.py) by plain boto3 and by `dupctl offsite
# push`. Each case has a server of its own; every repeat starts from a new, empty bucket.
# ==========================================================================================

OFFSITE_VOLSIZE_MB = 50  # a full at --scale 1 (~250 MB) is several volumes
DUPCTL = Path(sys.executable).with_name("dupctl")  # beside the runner's Python: the venv's
_OFFSITE_SETS: dict[Path, Path] = {}  # dataset root -> the folder its set was made in


def _offsite_set(ctx: Context, folder: Path) -> None:
    """The dataset's full into `folder`: made by the first offsite case set up, hard links to
    the same files for the next (the same bytes, still root's: sealed, if root made them)."""
    if (made := _OFFSITE_SETS.get(ctx.dataset.root)) is not None:
        for file in made.iterdir():
            os.link(file, folder / file.name)
        return
    archive = ctx.workdir / "archive"
    url = f"file://{folder}"
    full = duplicity_command(
        ctx, "full", ctx.dataset.root, url, archive, volsize=OFFSITE_VOLSIZE_MB
    )
    run_checked(full, ctx.workdir / "setup-full.log")
    _OFFSITE_SETS[ctx.dataset.root] = folder


class _OffsiteCase(Case):
    """A copy of the set to a moto server of the case's own, checked object by object."""

    server: MotoServer | None = None
    files: dict[str, int]  # the set: {name: size}

    @abstractmethod
    def set_folder(self, ctx: Context, server: MotoServer) -> Path:
        """Make and return the (empty) folder the case copies the set from."""

    def setup(self, ctx: Context) -> None:
        self.server = MotoServer(ctx.workdir / "moto")
        self.server.start()
        folder = self.set_folder(ctx, self.server)
        _offsite_set(ctx, folder)
        self.files = {file.name: file.stat().st_size for file in folder.iterdir()}
        if sum(name.endswith(".manifest.gpg") for name in self.files) != 1:
            raise RuntimeError(f"not one set: {sorted(self.files)}")

    def moto(self) -> MotoServer:
        assert self.server is not None, "setup() did not run"
        return self.server

    def output_bytes(self, ctx: Context, repeat: int) -> int | None:
        """Bytes in the bucket; raise unless it holds the set exactly, under PREFIX/HOST/."""
        there = self.moto().objects()
        wanted = {f"{PREFIX}/{HOST}/{name}": size for name, size in self.files.items()}
        if wrong := sorted(
            k for k in wanted.keys() | there.keys() if there.get(k) != wanted.get(k)
        ):
            raise RuntimeError(
                f"the bucket holds {len(there)} objects, the set {len(wanted)} files; "
                f"missing, extra or of another size: {', '.join(wrong[:3])}"
            )
        return sum(there.values())

    def teardown(self, ctx: Context) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@register
class Boto3Put(_OffsiteCase):
    """The floor of an offsite copy: one put_object per file of the set, one after another,
    with dupstack's client settings; nothing checked, nothing recorded."""

    name = "boto3-put"
    title = "boto3 put_object per file of one set, to moto S3 on 127.0.0.1"
    folder: Path

    def set_folder(self, ctx: Context, server: MotoServer) -> Path:
        self.folder = ctx.workdir / "set"
        self.folder.mkdir()
        return self.folder

    def run(self, ctx: Context, repeat: int) -> Command:
        server = self.moto()
        server.empty_bucket()
        argv = [
            *clean_env(ctx.workdir, keys=True),
            sys.executable, "-m", "bench.offsite", "put",
            server.endpoint, BUCKET, f"{PREFIX}/{HOST}", str(self.folder),
            "--client-config", json.dumps(client_options()),
        ]  # fmt: skip
        return Command(argv, cwd=REPO)


@register
class DupctlOffsitePush(_OffsiteCase):
    """`dupctl offsite push` of the host whose sealed files are the same set: what it adds to
    the plain upload (start-up, inventory, lock, listing, a sha256 of each file, checksums the
    server checks, a HEAD per object, the ledger written after each, manifests last; objects
    go `concurrency` at a time, 4 by default)."""

    name = "dupctl-offsite-push"
    title = "dupctl offsite push of the same set, to moto S3 on 127.0.0.1"
    baseline = "boto3-put"
    root: Path

    def set_folder(self, ctx: Context, server: MotoServer) -> Path:
        if os.geteuid() != 0:
            raise RuntimeError("needs root: dupctl runs as root and pushes root's (sealed) files")
        self.root = ctx.workdir / "root"
        return write_root(self.root, server.endpoint, OFFSITE_VOLSIZE_MB)

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        paths = ServerPaths.from_root(self.root)
        if sorted(sealed(paths, load_inventory(paths).host(HOST))) != sorted(self.files):
            raise RuntimeError(f"dupctl does not see the set as sealed in {self.root}")

    def run(self, ctx: Context, repeat: int) -> Command:
        self.moto().empty_bucket()
        forget_pushes(self.root)  # with the new bucket: a first push, every repeat
        argv = [*clean_env(ctx.workdir), str(DUPCTL), "--root", str(self.root),
                "offsite", "push", HOST, "--target", TARGET]  # fmt: skip
        return Command(argv)

    def output_bytes(self, ctx: Context, repeat: int) -> int | None:
        size = super().output_bytes(ctx, repeat)
        objects = len(self.files)
        volumes = sum(".difftar." in name for name in self.files)
        set_bytes = sum(self.files.values())
        bound = math.ceil(set_bytes / (OFFSITE_VOLSIZE_MB << 20)) + 3
        ctx.notes["objects per set"] = (
            f"{objects} objects ({volumes} volume(s), a manifest, signatures) for a set of "
            f"{set_bytes / 1e6:.1f} MB at volsize {OFFSITE_VOLSIZE_MB} MiB; bound "
            f"ceil(size / volsize) + 3 = {bound}: {'holds' if objects <= bound else 'EXCEEDED'}"
        )
        return size


def selected(names: Sequence[str] | None) -> list[type[Case]]:
    """The registered cases named (all of them, in order, for None); unknown names raise."""
    if not names:
        return list(CASES.values())
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise KeyError(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    return [CASES[n] for n in names]


import bench.fixedcost  # noqa: E402 - dupctl's fixed cost per run, per host, per process
import bench.knobs  # noqa: E402 - registers the knob cases (issue 13) after these
import bench.scale  # noqa: E402, F401 - many hosts, restores, many files

"""Benchmark cases, registered by name. See bench/README.md for how to add one.

A case is set up once, then measured `repeat` times (each repeat gets a fresh directory
`ctx.repeat_dir(i)`; what the backup writes goes to `ctx.out(i)`, whose size is reported),
then torn down. Only the Command returned by `run()` is timed.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bench.dataset import Dataset, Mutation, mutate
from bench.measure import SECRET_FD, Command, run_checked
from bench.sshd import LoopbackSshd

# gpg as duplicity 3.2 calls it for symmetric encryption (gpg defaults otherwise: AES-128,
# ZIP compression level 6), with the passphrase on an inherited fd, never in argv.
GPG_SYMMETRIC = (
    'gpg --batch --no-tty --quiet --pinentry-mode loopback --passphrase-fd "$3"'
    " --force-mdc --symmetric"
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

    def setup(self, ctx: Context) -> None:  # noqa: B027 - optional hook
        """Prepare what every repeat needs (unmeasured)."""

    @abstractmethod
    def run(self, ctx: Context, repeat: int) -> Command:
        """Prepare repeat `repeat` (unmeasured) and return the command to measure."""

    def teardown(self, ctx: Context) -> None:  # noqa: B027 - optional hook
        """Stop what `setup` started; the runner removes `ctx.workdir` afterwards."""

    def output_bytes(self, ctx: Context, repeat: int) -> int | None:
        """Bytes the repeat wrote as its backup (default: the size of `ctx.out(repeat)`)."""
        return tree_size(ctx.out(repeat)) if ctx.out(repeat).exists() else None


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
) -> Command:
    """`duplicity ACTION` as dupstack will run it: symmetric, PASSPHRASE in the environment."""
    argv = [
        ctx.duplicity,
        action,
        "--name",
        "bench",
        "--archive-dir",
        str(archive),
        "--tempdir",
        ctx.env()["TMPDIR"],
        "--volsize",
        str(VOLSIZE_MB),
        *extra,
        str(source),
        url,
    ]
    return Command(argv, env={**ctx.env(), "PASSPHRASE": ctx.passphrase})


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
        )

    def output_bytes(self, ctx: Context, repeat: int) -> int | None:
        new = [p for p in ctx.out(repeat).iterdir() if p.name not in self.before]
        return sum(p.stat().st_size for p in new)


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
# dupctl cases go here (see bench/README.md, "Adding a case"), once `dupctl backup` exists:
#   dupctl-backup-1   `dupctl backup H` for one host      (baseline: duplicity-sftp-full)
#   dupctl-backup-N   N hosts in parallel                 (baseline: dupctl-backup-1)
# Their tenant hosts' sshd PIDs go in Command.extra_roots so the tenant-side duplicity's
# memory and CPU are counted too.
# ==========================================================================================


def selected(names: Sequence[str] | None) -> list[type[Case]]:
    """The registered cases named (all of them, in order, for None); unknown names raise."""
    if not names:
        return list(CASES.values())
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise KeyError(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    return [CASES[n] for n in names]

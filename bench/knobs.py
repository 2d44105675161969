"""Cases for the knobs of the backup path (issue 13), each against the case it varies.

- SFTP through OpenSSH's `sftp` (`pexpect+sftp://`) next to paramiko (`sftp://`), and the
  SSH cipher on the OpenSSH side: duplicity's paramiko backend takes only the identity and
  known-hosts files from `--ssh-options`, so a cipher can be chosen only for `pexpect+`.
- Overlapped uploads: `--asynchronous-upload` (3.2.1 parses it only to warn: removed in
  3.0.0) and `--concurrency 2` (a pool of backend processes, each with its own connection).
- Volume size (50 and 1000 MB against dupstack's 200) and gpg's compression
  (`--gpg-options`: none, or zlib at level 1, against gpg's default ZIP at level 6).
- gpg's S2K count: gpg-agent's calibrated one (duplicity's unless told) against dupstack's
  65,536 bytes per file (also `duplicity-incremental-s2k-calibrated`, in cases.py).
- One file restored from a full and 30 incrementals, against the same bytes from a lone full.

Every SFTP case has a throwaway sshd of its own on 127.0.0.1 (bench/sshd.py), like
`duplicity-sftp-full`, its baseline, and checks after each run that a whole full set arrived.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

from agent.duplicity.backup import S2K_COUNT, S2K_FLAGS
from bench.cases import VOLSIZE_MB, Case, Context, duplicity_argv, duplicity_command, register
from bench.dataset import Mutation, mutate
from bench.measure import Command, run_checked
from bench.sshd import LoopbackSshd

MIB = 1 << 20
ZLIB = 2  # OpenPGP compression algorithm ids (RFC 4880 9.3): 1 ZIP, 2 ZLIB, 3 BZIP2
CHAIN = 30  # incrementals after the full in restore-one-file-chain30


# ==========================================================================================
# Full backups over SFTP
# ==========================================================================================


def full_set(folder: Path) -> list[Path]:
    """The volumes of the one full set in `folder`, in order; raise unless the set is whole
    (one manifest, its signatures, volumes 1..N) and nothing else is there (no `.part`)."""
    names = sorted(p.name for p in folder.iterdir())
    manifests = [n for n in names if re.fullmatch(r"duplicity-full\.\w+\.manifest\.gpg", n)]
    if len(manifests) != 1:
        raise RuntimeError(f"not one full set in {folder}: {names}")
    stamp = manifests[0].split(".")[1]
    count = sum(n.startswith(f"duplicity-full.{stamp}.vol") for n in names)
    volumes = [f"duplicity-full.{stamp}.vol{i}.difftar.gpg" for i in range(1, count + 1)]
    signatures = f"duplicity-full-signatures.{stamp}.sigtar.gpg"
    if not volumes or set(names) != {manifests[0], signatures, *volumes}:
        raise RuntimeError(f"not a whole full set in {folder}: {names}")
    return [folder / v for v in volumes]


def _sessions(sshd: LoopbackSshd) -> int:
    """SSH sessions the sshd has accepted so far (its log, one line per login)."""
    log = sshd.dir / "sshd.log"
    return log.read_text(errors="replace").count("Accepted publickey") if log.exists() else 0


class _SftpFull(Case):
    """duplicity full of the dataset to a loopback sshd of the case's own, with `options`."""

    baseline = "duplicity-sftp-full"
    scheme: ClassVar[str] = ""  # "pexpect+": OpenSSH's sftp binary; "": paramiko
    ssh_options: ClassVar[str] = ""  # added to the key and known-hosts options
    options: ClassVar[tuple[str, ...]] = ()
    volsize: ClassVar[int] = VOLSIZE_MB
    s2k: ClassVar[tuple[str, ...]] = S2K_FLAGS
    sshd: LoopbackSshd | None = None
    sessions_before: int = 0

    def setup(self, ctx: Context) -> None:
        self.sshd = LoopbackSshd(ctx.workdir / "sshd")
        self.sshd.start()

    def server(self) -> LoopbackSshd:
        assert self.sshd is not None, "setup() did not run"
        return self.sshd

    def all_ssh_options(self) -> str:
        return " ".join(o for o in (self.server().ssh_options(), self.ssh_options) if o)

    def run(self, ctx: Context, repeat: int) -> Command:
        sshd = self.server()
        out = ctx.out(repeat)
        out.mkdir()
        self.sessions_before = _sessions(sshd)
        command = duplicity_command(
            ctx,
            "full",
            ctx.dataset.root,
            self.scheme + sshd.url(out),
            ctx.repeat_dir(repeat) / "archive",
            extra=[f"--ssh-options={self.all_ssh_options()}", *self.options],
            volsize=self.volsize,
            s2k=self.s2k,
        )
        return dataclasses.replace(command, extra_roots=(sshd.pid,))

    def output_bytes(self, ctx: Context, repeat: int) -> int | None:
        """Size of the set; raise unless it is one whole full set with volumes <= volsize."""
        volumes = full_set(ctx.out(repeat))
        sizes = [v.stat().st_size for v in volumes]
        if max(sizes) > (self.volsize + 1) * MIB:  # duplicity aims 50 KiB below volsize
            raise RuntimeError(f"a volume of {max(sizes)} bytes at --volsize {self.volsize}")
        sessions = _sessions(self.server()) - self.sessions_before
        ctx.notes["set"] = (
            f"{len(volumes)} volume(s) at --volsize {self.volsize}, the largest "
            f"{max(sizes) / 1e6:.1f} MB; {sessions} SSH session(s) per run"
        )
        self.check(ctx, repeat, volumes, sessions)
        return sum(p.stat().st_size for p in ctx.out(repeat).iterdir())

    def check(self, ctx: Context, repeat: int, volumes: Sequence[Path], sessions: int) -> None:
        """Raise unless the run shows the knob took effect (default: nothing more to see)."""

    def teardown(self, ctx: Context) -> None:
        if self.sshd is not None:
            self.sshd.stop()
            self.sshd = None


def _python_of(script: str) -> str:
    """The interpreter of a console script (its #! line), to look for its modules."""
    with open(shutil.which(script) or script, "rb") as f:
        first = f.readline().decode(errors="replace")
    if not first.startswith("#!"):
        raise RuntimeError(f"{script} has no #! line: cannot tell its Python")
    return first[2:].strip()


def _negotiated_cipher(sshd: LoopbackSshd, ssh_options: str) -> str:
    """The client->server cipher OpenSSH's sftp agrees on with these options (`sftp -v`)."""
    argv = ["sftp", "-v", "-b", "/dev/null", *ssh_options.split(), f"-oPort={sshd.port}",
            f"{sshd.user}@127.0.0.1"]  # fmt: skip
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    match = re.search(r"kex: client->server cipher: (\S+) MAC: (\S+)", done.stderr)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"sftp -v to the sshd failed ({done.returncode}): {done.stderr[-300:]}")
    return match.group(1) + ("" if match.group(2) == "<implicit>" else f" + {match.group(2)}")


def _paramiko_cipher(sshd: LoopbackSshd) -> str:
    """The cipher paramiko (duplicity's sftp://) agrees on with the sshd: its own choice,
    since duplicity passes it no cipher."""
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(sshd.known_hosts))
    try:
        client.connect(
            "127.0.0.1",
            sshd.port,
            username=sshd.user,
            key_filename=str(sshd.identity),
            allow_agent=False,
            look_for_keys=False,
        )
        transport = client.get_transport()
        assert transport is not None
        return f"{transport.local_cipher} + {transport.local_mac}"
    finally:
        client.close()


class _PexpectFull(_SftpFull):
    """duplicity full through OpenSSH's `sftp` (`pexpect+sftp://`, one `sftp` per file)."""

    baseline = "sftp-pexpect-full"
    scheme = "pexpect+"
    cipher: ClassVar[str | None] = None  # the cipher the options must make ssh agree on

    def setup(self, ctx: Context) -> None:
        python = _python_of(ctx.duplicity)
        probe = subprocess.run([python, "-c", "import pexpect"], capture_output=True, check=False)
        if probe.returncode != 0:
            raise RuntimeError(f"pexpect is not installed for duplicity's Python ({python})")
        if shutil.which("sftp") is None:
            raise RuntimeError("no sftp binary (Debian package openssh-client)")
        super().setup(ctx)
        cipher = _negotiated_cipher(self.server(), self.all_ssh_options())
        if self.cipher is not None and not cipher.startswith(self.cipher):
            raise RuntimeError(f"ssh agreed on {cipher}, not {self.cipher}")
        ctx.notes["cipher"] = f"OpenSSH's sftp agrees on {cipher} with the loopback sshd"


@register
class SftpPexpectFull(_PexpectFull):
    """OpenSSH's sftp client instead of paramiko, the same sshd and set."""

    name = "sftp-pexpect-full"
    title = "duplicity full, pexpect+sftp:// (OpenSSH sftp) to local sshd"
    baseline = "duplicity-sftp-full"

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        ctx.notes["paramiko cipher"] = (
            f"paramiko (`duplicity-sftp-full`) agrees on {_paramiko_cipher(self.server())}"
        )

    def check(self, ctx: Context, repeat: int, volumes: Sequence[Path], sessions: int) -> None:
        if sessions < len(volumes) + 2:  # one sftp per volume, manifest, signatures, listing
            raise RuntimeError(f"{sessions} SSH session(s): not one sftp per file")


@register
class SftpCipherChacha(_PexpectFull):
    """OpenSSH's sftp pinned to chacha20-poly1305 (OpenSSH's first choice anyway)."""

    name = "sftp-cipher-chacha"
    title = "duplicity full, pexpect+sftp://, -oCiphers=chacha20-poly1305"
    cipher = "chacha20-poly1305@openssh.com"
    ssh_options = f"-oCiphers={cipher}"


@register
class SftpCipherAesGcm(_PexpectFull):
    """OpenSSH's sftp pinned to AES-128-GCM (AES-NI where the CPU has it)."""

    name = "sftp-cipher-aes128gcm"
    title = "duplicity full, pexpect+sftp://, -oCiphers=aes128-gcm"
    cipher = "aes128-gcm@openssh.com"
    ssh_options = f"-oCiphers={cipher}"


@register
class SftpAsyncFull(_SftpFull):
    """`--asynchronous-upload`: in 3.2.1 a warning only, so this measures a plain full."""

    name = "sftp-async-full"
    title = "duplicity full, sftp://, --asynchronous-upload"
    options = ("--asynchronous-upload",)

    def check(self, ctx: Context, repeat: int, volumes: Sequence[Path], sessions: int) -> None:
        log = (ctx.repeat_dir(repeat) / "run.log").read_text(errors="replace")
        if "replaced with `--concurrency`" not in log:
            raise RuntimeError("duplicity did not warn that --asynchronous-upload is gone")
        ctx.notes["asynchronous-upload"] = (
            "duplicity 3.2.1 only warns (removed in 3.0.0, replaced by --concurrency)"
        )


@register
class SftpConcurrencyFull(_SftpFull):
    """`--concurrency 2`: volumes handed to 2 backend processes (each its own SSH session)
    while the next volume is built; manifest and signatures still go from the main one."""

    name = "sftp-concurrency-full"
    title = "duplicity full, sftp://, --concurrency 2"
    options = ("--concurrency", "2")

    def check(self, ctx: Context, repeat: int, volumes: Sequence[Path], sessions: int) -> None:
        if sessions < 2:  # the main process's and at least one pool worker's
            raise RuntimeError(f"{sessions} SSH session(s): the backend pool did not connect")


@register
class SftpVolsize50(_SftpFull):
    """`--volsize 50`: more, smaller volumes (each built in TMPDIR, then sent)."""

    name = "sftp-volsize-50"
    title = "duplicity full, sftp://, --volsize 50"
    volsize = 50


@register
class SftpVolsize1000(_SftpFull):
    """`--volsize 1000`: one volume for the whole dataset (up to 1000 MB in TMPDIR)."""

    name = "sftp-volsize-1000"
    title = "duplicity full, sftp://, --volsize 1000"
    volsize = 1000


def _packets(ctx: Context, encrypted: Path) -> bytes:
    """gpg's listing of the OpenPGP packets of an encrypted file (decrypted to list them)."""
    argv = ["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase-fd", "0",
            "--list-packets", str(encrypted)]  # fmt: skip
    done = subprocess.run(
        argv,
        input=ctx.passphrase.encode() + b"\n",
        capture_output=True,
        env={**os.environ, **ctx.env()},
        check=True,
    )
    return done.stdout


def _compression(ctx: Context, encrypted: Path) -> int | None:
    """The OpenPGP compression algorithm of an encrypted file (None: not compressed)."""
    match = re.search(rb"^:compressed packet: algo=(\d+)", _packets(ctx, encrypted), re.MULTILINE)
    return int(match.group(1)) if match else None


def _s2k_count(ctx: Context, encrypted: Path) -> int:
    """How many bytes gpg hashed to make the file's key from the passphrase (its S2K)."""
    match = re.search(rb"salt [0-9A-F]+, count (\d+)", _packets(ctx, encrypted))
    if match is None:
        raise RuntimeError(f"{encrypted.name}: no iterated S2K in its packets")
    return int(match.group(1))


class _GpgFull(_SftpFull):
    """A full whose volumes gpg compresses with `algorithm` (checked on volume 1)."""

    algorithm: ClassVar[int | None]

    def check(self, ctx: Context, repeat: int, volumes: Sequence[Path], sessions: int) -> None:
        if (found := _compression(ctx, volumes[0])) != self.algorithm:
            raise RuntimeError(f"volume 1 compressed with algo {found}, not {self.algorithm}")


@register
class SftpGpgNoCompress(_GpgFull):
    """gpg does not compress: no CPU spent on the random blobs, none saved on text."""

    name = "sftp-gpg-nocompress"
    title = "duplicity full, sftp://, gpg --compress-algo=none"
    options = ("--gpg-options=--compress-algo=none",)
    algorithm = None


@register
class SftpGpgZlib1(_GpgFull):
    """gpg compresses with zlib at level 1 (its default: ZIP at 6)."""

    name = "sftp-gpg-zlib1"
    title = "duplicity full, sftp://, gpg --compress-algo=zlib --compress-level=1"
    options = ("--gpg-options=--compress-algo=zlib --compress-level=1",)
    algorithm = ZLIB


@register
class SftpS2kCalibrated(_SftpFull):
    """gpg-agent's calibrated S2K count (up to 65,011,712 bytes hashed per file), which
    duplicity gets unless told: dupstack's own before it set 65,536 (S2K_FLAGS)."""

    name = "sftp-s2k-calibrated"
    title = "duplicity full, sftp://, gpg's calibrated S2K count"
    s2k = ()

    def check(self, ctx: Context, repeat: int, volumes: Sequence[Path], sessions: int) -> None:
        if (count := _s2k_count(ctx, volumes[0])) == S2K_COUNT:
            raise RuntimeError("volume 1 has dupstack's S2K count, not gpg's calibrated one")
        ctx.notes["s2k"] = f"gpg's calibrated count here: {count:,} bytes per file"


# ==========================================================================================
# One file restored: from a full and CHAIN incrementals, and from a lone full
# ==========================================================================================


@dataclasses.dataclass(frozen=True)
class Evolved:
    """A copy of the dataset after CHAIN mutations, and the file restored from its backups."""

    source: Path
    path: str  # relative to `source`: rewritten by the last mutation
    data: bytes  # its bytes now (not those of the dataset's original)
    changed_by: list[int]  # the mutations (1..CHAIN) that rewrote it


def _evolve(ctx: Context, after_each: Callable[[Path], None] | None = None) -> Evolved:
    """Copy the dataset and apply mutate(seed=1..CHAIN) to it, calling `after_each(copy)`
    first and after each mutation (deterministic: the same final tree for every caller)."""
    source = ctx.workdir / "data"
    subprocess.run(["cp", "-a", str(ctx.dataset.root), str(source)], check=True)
    mutations: list[Mutation] = []
    if after_each is not None:
        after_each(source)
    for seed in range(1, CHAIN + 1):
        mutations.append(mutate(source, seed=seed))
        if after_each is not None:
            after_each(source)
    path = sorted(mutations[-1].small_rewritten)[0]
    data = (source / path).read_bytes()
    if data == (ctx.dataset.root / path).read_bytes():
        raise RuntimeError(f"{path} is the same as in the dataset: nothing to restore from")
    changed_by = [i for i, m in enumerate(mutations, 1) if path in m.small_rewritten]
    return Evolved(source, path, data, changed_by)


def _restore_command(ctx: Context, url: str, archive: Path, path: str, target: Path) -> Command:
    """`duplicity restore` of one path, as dupstack runs it (numeric owners, one word for
    --path-to-restore), with the same name, cache and environment as the backups."""
    argv = [*duplicity_argv(ctx, "restore", archive), "--numeric-owner",
            f"--path-to-restore={path}", url, str(target)]  # fmt: skip
    return Command(argv, env={**ctx.env(), "PASSPHRASE": ctx.passphrase})


class _RestoreOneFile(Case):
    """One file restored (into a fresh, empty dir) from the repository `build` made, with the
    backups' metadata cache (a copy per repeat); checked byte for byte against the source."""

    evolved: Evolved
    repository: Path
    archive: Path

    @abstractmethod
    def build(self, ctx: Context) -> Evolved:
        """Make the repository and archive dir (unmeasured); return what to restore."""

    def setup(self, ctx: Context) -> None:
        self.repository = ctx.workdir / "repository"
        self.archive = ctx.workdir / "archive"
        self.evolved = self.build(ctx)
        manifests = [p.name for p in self.repository.glob("*.manifest.gpg")]
        ctx.notes["repository"] = (
            f"{sum(n.startswith('duplicity-full.') for n in manifests)} full, "
            f"{sum(n.startswith('duplicity-inc.') for n in manifests)} incremental(s), "
            f"{sum(p.stat().st_size for p in self.repository.iterdir()) / 1e6:.1f} MB; "
            f"restores `{self.evolved.path}` ({len(self.evolved.data)} bytes), rewritten by "
            f"mutation(s) {', '.join(map(str, self.evolved.changed_by))} of {CHAIN}"
        )

    def target(self, ctx: Context, repeat: int) -> Path:
        """Where repeat `repeat` restores the file: in `ctx.out(repeat)`, empty before."""
        return ctx.out(repeat) / Path(self.evolved.path).name

    def run(self, ctx: Context, repeat: int) -> Command:
        archive = ctx.repeat_dir(repeat) / "archive"
        shutil.copytree(self.archive, archive)
        ctx.out(repeat).mkdir()
        url = f"file://{self.repository}"
        return _restore_command(ctx, url, archive, self.evolved.path, self.target(ctx, repeat))

    def output_bytes(self, ctx: Context, repeat: int) -> int | None:
        """Size of the restored file; raise unless it is the only file and the source's bytes."""
        restored = sorted(ctx.out(repeat).rglob("*"))
        target = self.target(ctx, repeat)
        if restored != [target] or target.read_bytes() != self.evolved.data:
            raise RuntimeError(f"restored {[str(p) for p in restored]}, not {self.evolved.path}")
        return len(self.evolved.data)


def _backup(ctx: Context, action: str, source: Path, repository: Path, archive: Path) -> None:
    run_checked(
        duplicity_command(ctx, action, source, f"file://{repository}", archive),
        ctx.workdir / f"setup-{action}.log",
    )


@register
class RestoreOneFileFull(_RestoreOneFile):
    """The file from a lone full of the final tree: the volume holding it fetched and
    decrypted."""

    name = "restore-one-file-full"
    title = "duplicity restore --path-to-restore (one file) from a lone full, file://"

    def build(self, ctx: Context) -> Evolved:
        evolved = _evolve(ctx)
        _backup(ctx, "full", evolved.source, self.repository, self.archive)
        return evolved


@register
class RestoreOneFileChain(_RestoreOneFile):
    """The same file from a full and CHAIN incrementals (one set per mutation): the full's
    volume and every incremental's that may hold the path, patched in order."""

    name = f"restore-one-file-chain{CHAIN}"
    title = f"duplicity restore --path-to-restore (one file) from full + {CHAIN} incrementals"
    baseline = "restore-one-file-full"

    def build(self, ctx: Context) -> Evolved:
        ended = 0.0

        def backup(source: Path) -> None:
            nonlocal ended
            # duplicity names sets by whole seconds: each must start after the last one's.
            time.sleep(max(0.0, int(ended) + 1 - time.time()))
            _backup(ctx, "incremental" if ended else "full", source, self.repository, self.archive)
            ended = time.time()

        evolved = _evolve(ctx, backup)
        incrementals = list(self.repository.glob("duplicity-inc.*.manifest.gpg"))
        if len(incrementals) != CHAIN:
            raise RuntimeError(f"{len(incrementals)} incrementals made, not {CHAIN}")
        return evolved

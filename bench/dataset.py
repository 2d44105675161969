"""Reproducible benchmark dataset: the same bytes (and mtimes) for the same seed and scale.

Layout under the dataset root:

    tree/   many small files (1-16 KiB, log-uniform; 80% text, 20% random) in nested dirs
    blobs/  a few large incompressible files (random bytes)
    logs/   a few large compressible files (syslog-like lines)

Only `random.Random.random()` (whose sequence Python guarantees across versions) and SHAKE-128
(for bulk bytes) are used, so the same seed gives the same tree on any Python >= 3.11.
`mutate()` makes the changes an incremental backup should pick up.

    python bench/dataset.py DIR [--scale 1.0] [--seed 1] [--mutate SEED] [--digest]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024
# Every generated file and directory gets this mtime (2024-01-01T00:00:00Z); mutate() moves
# changed files a day past the newest mtime in the tree, so the result is deterministic too.
BASE_MTIME = 1_704_067_200
CHUNK = MIB

WORDS = (
    "access account action address agent allow archive backup bind block buffer cache "
    "certificate chain channel check client cluster config connect container control copy "
    "daemon data database debug default deny device directory disk domain driver enable "
    "endpoint error event export file filter firewall flag format gateway group handler "
    "header health host image index instance interface kernel key level limit listen local "
    "lock log manager memory message metric module monitor mount network node option output "
    "package password path policy pool port process protocol proxy queue record region "
    "release remote request resource restore retry role route rule schedule schema secret "
    "server service session signal snapshot socket source stack state status storage stream "
    "subnet system target task template tenant thread timeout token trace update upload "
    "user value version volume worker zone"
).split()
TEXT_EXTS = (".conf", ".txt", ".py", ".html", ".json", ".yaml", ".sh")
BINARY_EXTS = (".png", ".gz", ".bin", ".jpg")
LOG_PROGRAMS = ("nginx", "sshd", "cron", "kernel", "postgres", "app", "systemd", "haproxy")
LOG_LEVELS = ("INFO",) * 12 + ("DEBUG",) * 5 + ("WARNING",) * 2 + ("ERROR",)


@dataclass(frozen=True)
class Spec:
    """What `generate()` makes at scale 1.0: 30,004 files, about 400 MB.

    Sized so one duplicity full takes ~10-20 s on the 2-core test machine (CPU ~13 s).
    """

    small_files: int = 30_000
    small_min: int = 1024
    small_max: int = 16 * 1024
    binary_share: float = 0.2
    files_per_dir: int = 16
    max_depth: int = 6
    blobs: int = 2
    blob_size: int = 64 * MIB
    logs: int = 2
    log_size: int = 48 * MIB

    def scaled(self, scale: float) -> Spec:
        """The same shape with counts and large-file sizes multiplied by `scale` (min 1)."""
        if scale <= 0:
            raise ValueError("scale must be > 0")
        return Spec(
            small_files=max(1, round(self.small_files * scale)),
            small_min=self.small_min,
            small_max=self.small_max,
            binary_share=self.binary_share,
            files_per_dir=self.files_per_dir,
            max_depth=self.max_depth,
            blobs=self.blobs,
            blob_size=max(64 * 1024, round(self.blob_size * scale)),
            logs=self.logs,
            log_size=max(64 * 1024, round(self.log_size * scale)),
        )


@dataclass(frozen=True)
class Dataset:
    """A generated dataset on disk and its size."""

    root: Path
    files: int
    bytes: int
    small_files: int
    small_bytes: int
    blob_bytes: int
    log_bytes: int
    seed: int | None = None
    scale: float | None = None

    @classmethod
    def scan(cls, root: Path, *, seed: int | None = None, scale: float | None = None) -> Dataset:
        """Measure an existing dataset at `root` (e.g. a copy of a generated one)."""
        sizes = {part: [p.stat().st_size for p in _files(root / part)] for part in _PARTS}
        return cls(
            root=root,
            files=sum(len(s) for s in sizes.values()),
            bytes=sum(sum(s) for s in sizes.values()),
            small_files=len(sizes["tree"]),
            small_bytes=sum(sizes["tree"]),
            blob_bytes=sum(sizes["blobs"]),
            log_bytes=sum(sizes["logs"]),
            seed=seed,
            scale=scale,
        )


@dataclass(frozen=True)
class Mutation:
    """What `mutate()` changed (paths relative to the dataset root)."""

    small_rewritten: list[str]
    log_appended: str
    log_bytes_appended: int
    blob_rewritten: str
    blob_offset: int
    blob_bytes_rewritten: int
    changed_bytes: int
    mtime: int
    paths: list[str] = field(default_factory=list)


_PARTS = ("tree", "blobs", "logs")


class _Rng:
    """Deterministic choices built only on `random()`, keyed by a purpose string."""

    def __init__(self, *key: object) -> None:
        self._r = random.Random(":".join(("dupstack-bench", *map(str, key))))

    def random(self) -> float:
        return self._r.random()

    def below(self, n: int) -> int:
        """An integer in [0, n)."""
        return min(n - 1, int(self._r.random() * n))

    def pick(self, items: Sequence[str]) -> str:
        return items[self.below(len(items))]

    def sample(self, n: int, k: int) -> list[int]:
        """`k` distinct integers from [0, n), in selection order (partial Fisher-Yates)."""
        pool = list(range(n))
        for i in range(k):
            j = i + self.below(n - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]


def _bytes(key: str, n: int) -> bytes:
    """`n` pseudo-random (incompressible) bytes determined by `key`."""
    return b"".join(_byte_chunks(key, n))


def _byte_chunks(key: str, n: int) -> Iterator[bytes]:
    for i, start in enumerate(range(0, n, CHUNK)):
        size = min(CHUNK, n - start)
        yield hashlib.shake_128(f"{key}:{i}".encode()).digest(size)


def _corpus(seed: int, size: int = MIB) -> bytes:
    """About `size` bytes of config/code-like text, shared by all small text files."""
    rng = _Rng("corpus", seed)
    lines: list[str] = []
    total = 0
    while total < size:
        indent = "    " * rng.below(3)
        words = [rng.pick(WORDS) for _ in range(3 + rng.below(10))]
        style = rng.below(4)
        if style == 0:
            line = f"{indent}{words[0]}_{words[1]} = {' '.join(words[2:])}"
        elif style == 1:
            line = f"{indent}# {' '.join(words)}"
        elif style == 2:
            line = f'{indent}"{words[0]}": "{"-".join(words[1:])}",'
        else:
            line = f"{indent}{' '.join(words)} {rng.below(65536)}"
        lines.append(line)
        total += len(line) + 1
    text = ("\n".join(lines) + "\n").encode()
    return text + text[:65536]  # so a slice near the end can wrap without a check


def _text(corpus: bytes, rng: _Rng, header: str, size: int) -> bytes:
    head = f"# {header}\n".encode()
    start = rng.below(len(corpus) - 65536)
    body = corpus[start : start + max(0, size - len(head))]
    while len(head) + len(body) < size:  # only for files bigger than the wrap margin
        body += corpus[: size - len(head) - len(body)]
    return (head + body)[:size]


def _log_lines(rng: _Rng, start: int, size: int) -> tuple[bytes, int]:
    """About `size` bytes of syslog-like lines from time `start`; returns (data, end time)."""
    # Real logs repeat a small set of messages with a few variable fields.
    messages = [" ".join(rng.pick(WORDS) for _ in range(2 + rng.below(6))) for _ in range(48)]
    pids = {prog: 1000 + rng.below(30000) for prog in LOG_PROGRAMS}
    out: list[str] = []
    total = 0
    t = start
    while total < size:
        t += rng.below(3)
        prog = rng.pick(LOG_PROGRAMS)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
        line = (
            f"{stamp}.{rng.below(1000):03d}Z node{rng.below(4)} {prog}[{pids[prog]}]:"
            f" {rng.pick(LOG_LEVELS)} {rng.pick(messages)} req={rng.below(1 << 20)}"
            f" took={rng.below(500)}ms\n"
        )
        out.append(line)
        total += len(line)
    return "".join(out).encode(), t


def _files(root: Path) -> list[Path]:
    """Regular files under `root`, in a fixed (sorted) order."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found.extend(Path(dirpath, name) for name in sorted(filenames))
    return found


def _write(path: Path, data: bytes, mtime: int) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)
    os.utime(path, (mtime, mtime))


def _small_file(corpus: bytes, rng: _Rng, spec: Spec, name: str, binary: bool, key: str) -> bytes:
    size = int(spec.small_min * (spec.small_max / spec.small_min) ** rng.random())
    if binary:
        return _bytes(key, size)
    return _text(corpus, rng, f"{name} {key}", size)


def generate(root: Path, *, scale: float = 1.0, seed: int = 1, spec: Spec | None = None) -> Dataset:
    """Create the dataset at `root` (which must not exist); same seed+scale, same bytes."""
    spec = (spec or Spec()).scaled(scale)
    root.mkdir(parents=True)
    rng = _Rng("layout", seed)
    corpus = _corpus(seed)

    tree = root / "tree"
    dirs: list[tuple[Path, int]] = [(tree, 0)]
    tree.mkdir()
    for j in range(1, max(1, spec.small_files // spec.files_per_dir)):
        eligible = [d for d in dirs if d[1] < spec.max_depth]
        parent, depth = eligible[rng.below(len(eligible))]
        path = parent / f"{rng.pick(WORDS)}{j}"
        path.mkdir()
        dirs.append((path, depth + 1))
    for i in range(spec.small_files):
        directory = dirs[rng.below(len(dirs))][0]
        binary = rng.random() < spec.binary_share
        name = f"{rng.pick(WORDS)}-{i}{rng.pick(BINARY_EXTS if binary else TEXT_EXTS)}"
        data = _small_file(corpus, rng, spec, name, binary, f"small:{seed}:{i}")
        _write(directory / name, data, BASE_MTIME)

    (root / "blobs").mkdir()
    for i in range(spec.blobs):
        path = root / "blobs" / f"blob{i}.img"
        with open(path, "wb") as f:
            for chunk in _byte_chunks(f"blob:{seed}:{i}", spec.blob_size):
                f.write(chunk)
        os.chmod(path, 0o644)
        os.utime(path, (BASE_MTIME, BASE_MTIME))

    (root / "logs").mkdir()
    for i in range(spec.logs):
        data, _ = _log_lines(_Rng("log", seed, i), BASE_MTIME - 30 * 86400, spec.log_size)
        _write(root / "logs" / f"app{i}.log", data, BASE_MTIME)

    _fix_dir_metadata(root)
    return Dataset.scan(root, seed=seed, scale=scale)


def _fix_dir_metadata(root: Path) -> None:
    """Give every directory the same mode and mtime (children before parents)."""
    for dirpath, _, _ in sorted(os.walk(root), key=lambda w: -len(Path(w[0]).parts)):
        os.chmod(dirpath, 0o755)  # noqa: S103 - a dataset dir, as in a real tree
        os.utime(dirpath, (BASE_MTIME, BASE_MTIME))


def mutate(dataset: Dataset | Path, seed: int = 1) -> Mutation:
    """Change the dataset in place as a day of use would (deterministic for a given seed).

    Rewrites ~0.5% of the small files (size within +-10%), appends ~1% to one log and
    rewrites a slice (1 MiB at scale 1) of one large random file. Changed files get an
    mtime one day past the newest in the tree; directory mtimes are kept.
    """
    root = dataset.root if isinstance(dataset, Dataset) else dataset
    rng = _Rng("mutate", seed)
    files = {part: _files(root / part) for part in _PARTS}
    mtime = max(int(p.stat().st_mtime) for part in files.values() for p in part) + 86400
    corpus = _corpus(seed)
    changed = 0

    small = files["tree"]
    rewritten: list[str] = []
    for i in sorted(rng.sample(len(small), max(1, round(len(small) * 0.005)))):
        path = small[i]
        old = path.stat().st_size
        size = max(1, round(old * (0.9 + 0.2 * rng.random())))
        if path.suffix in BINARY_EXTS:
            data = _bytes(f"mutate:{seed}:{i}", size)
        else:
            data = _text(corpus, rng, f"{path.name} mutate:{seed}:{i}", size)
        _write(path, data, mtime)
        rewritten.append(str(path.relative_to(root)))
        changed += size

    log = files["logs"][rng.below(len(files["logs"]))]
    log_size = log.stat().st_size
    extra, _ = _log_lines(_Rng("log-append", seed), mtime - 86400, max(4096, log_size // 100))
    with open(log, "ab") as f:
        f.write(extra)
    os.utime(log, (mtime, mtime))
    changed += len(extra)

    blob = files["blobs"][rng.below(len(files["blobs"]))]
    blob_size = blob.stat().st_size
    length = min(blob_size, max(64 * 1024, blob_size // 24))
    offset = rng.below(blob_size - length + 1)
    with open(blob, "r+b") as f:
        f.seek(offset)
        f.write(_bytes(f"mutate-blob:{seed}", length))
    os.utime(blob, (mtime, mtime))
    changed += length

    rel = [*rewritten, str(log.relative_to(root)), str(blob.relative_to(root))]
    return Mutation(
        small_rewritten=rewritten,
        log_appended=str(log.relative_to(root)),
        log_bytes_appended=len(extra),
        blob_rewritten=str(blob.relative_to(root)),
        blob_offset=offset,
        blob_bytes_rewritten=length,
        changed_bytes=changed,
        mtime=mtime,
        paths=rel,
    )


def digest(root: Path) -> str:
    """SHA-256 over every path, type, mode, mtime and content: equal digests, equal trees."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            path = Path(dirpath, name)
            st = path.lstat()
            h.update(f"{path.relative_to(root)}\0{st.st_mode:o}\0{int(st.st_mtime)}\0".encode())
            if path.is_file():
                h.update(f"{st.st_size}\0".encode())
                with open(path, "rb") as f:
                    while chunk := f.read(CHUNK):
                        h.update(chunk)
    return h.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: generate (or mutate) a dataset and print its size (and digest)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mutate", type=int, metavar="SEED", help="mutate an existing dataset")
    parser.add_argument("--force", action="store_true", help="replace an existing ROOT")
    parser.add_argument("--digest", action="store_true", help="print a digest of the tree")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if args.mutate is not None:
        m = mutate(args.root, args.mutate)
        print(f"mutated {len(m.paths)} files, {m.changed_bytes / MIB:.1f} MiB changed")
    else:
        if args.force and args.root.exists():
            shutil.rmtree(args.root)
        ds = generate(args.root, scale=args.scale, seed=args.seed)
        print(
            f"{ds.files} files, {ds.bytes / 1e6:.1f} MB (small {ds.small_files} files "
            f"{ds.small_bytes / 1e6:.1f} MB, blobs {ds.blob_bytes / 1e6:.1f} MB, "
            f"logs {ds.log_bytes / 1e6:.1f} MB)"
        )
    print(f"took {time.perf_counter() - started:.1f} s")
    if args.digest:
        print(digest(args.root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

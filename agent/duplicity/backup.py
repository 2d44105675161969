"""duplicity backup / full: one backup set of a host's selection."""

from __future__ import annotations

import re

from agent.duplicity.common import (
    DUPLICITY,
    Repository,
    Selection,
    repository_flags,
    selection_flags,
    verbosity_flags,
)

# gpg's stretching of the passphrase into each file's key (OpenPGP S2K): 65,536 bytes hashed,
# not the count gpg-agent calibrates (up to 65,011,712 bytes, ~0.1-0.3 s of CPU for every
# volume, manifest and signatures file written, screened or read back). Stretching slows the
# guessing of a weak passphrase; a host's is 256 bits derived from a random secret
# (agent/host_passphrase.py), which no count makes any harder to guess. gpg reads the count
# from each file: any gpg decrypts these, and sets made with the old count still restore.
S2K_COUNT = 65536
S2K_FLAGS = (f"--gpg-options=--s2k-count={S2K_COUNT}",)


def backup_command(
    repository: Repository,
    selection: Selection,
    *,
    full: bool = False,
    full_if_older_than: str | None = None,
    volsize: int | None = None,
    concurrency: int = 1,
    compression: str | None = None,
    retry_delay: int | None = None,
    statistics: bool = True,
    dry_run: bool = False,
    verbosity: str | None = None,
    local_path: str = DUPLICITY,
) -> tuple[str, ...]:
    """`duplicity full` when `full`, else `duplicity backup`: incremental, or full when the
    repository has none yet or its last full is older than `full_if_older_than` (7D...).
    `retry_delay`: seconds between duplicity's 5 attempts of a failed transfer (default 30).
    `dry_run`: an incremental that writes nothing, for its statistics (SourceFiles).
    `concurrency`: volumes uploaded at once; `compression`: gpg's (gpg_compression_flags)."""
    if full and full_if_older_than is not None:
        raise ValueError("full_if_older_than only applies to an automatic backup")
    return (
        local_path,
        "full" if full else "incremental" if dry_run else "backup",
        *(("--dry-run",) if dry_run else ()),
        *repository_flags(repository),
        *(("--full-if-older-than", full_if_older_than) if full_if_older_than else ()),
        *(("--volsize", str(volsize)) if volsize is not None else ()),
        *(("--concurrency", str(concurrency)) if concurrency > 1 else ()),
        *S2K_FLAGS,
        *gpg_compression_flags(compression),
        *(("--backend-retry-delay", str(retry_delay)) if retry_delay is not None else ()),
        *(() if statistics else ("--no-print-statistics",)),
        *verbosity_flags(verbosity),
        *selection_flags(selection),
        selection.root,
        repository.url,
    )


def gpg_compression_flags(compression: str | None) -> tuple[str, ...]:
    """`--gpg-options` for gpg's compression of each volume: "none", "zlib", "zlib-1" (an
    algorithm, zip zlib or bzip2, and a level 1-9); None: gpg's own (ZIP, level 6). Only
    the writer needs it: gpg reads the algorithm from each file when it decrypts."""
    if compression is None:
        return ()
    if not re.fullmatch(r"none|(zip|zlib|bzip2)(-[1-9])?", compression):
        raise ValueError(f"not a compression: {compression!r}")
    algorithm, _, level = compression.partition("-")
    options = f"--compress-algo={algorithm}" + (f" --compress-level={level}" if level else "")
    return (f"--gpg-options={options}",)  # one word: the value starts with "-"

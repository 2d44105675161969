"""What every duplicity command shares: the repository, selection, times, URLs and environment.

Builders here and in the sibling modules are pure: they return argv tuples (and an env dict)
for agent/execute.py or agent/remote.py to run. Secrets never appear in argv: duplicity reads
the passphrase from PASSPHRASE in its environment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv6Address, ip_address
from pathlib import PurePosixPath

DUPLICITY = "duplicity"

# collection-status and list-current-files print times with asctime() in local time, and
# gettext may translate their words: fix both so that the output parses the same anywhere.
# PYTHONIOENCODING: a name that is not UTF-8 printed as its bytes (duplicity's logging
# would fail on it, and drop the line).
STABLE_OUTPUT_ENV: Mapping[str, str] = {
    "TZ": "UTC",
    "LC_ALL": "C.UTF-8",
    "LANGUAGE": "C",
    "PYTHONIOENCODING": "utf-8:surrogateescape",
}


def backup_name(host: str) -> str:
    """duplicity's --name for a host: names its cache folder inside the archive dir."""
    return f"dupstack-{host}"


def sftp_url(user: str, address: str, port: int, path: str) -> str:
    """`sftp://user@address:port//abs/path` (an IPv6 address goes in brackets)."""
    if not path.startswith("/"):
        raise ValueError(f"sftp path must be absolute: {path!r}")
    try:
        literal = ip_address(address)
    except ValueError:
        literal = None
    host = f"[{address}]" if isinstance(literal, IPv6Address) else address
    return f"sftp://{user}@{host}:{port}/{path}"


def file_url(path: str) -> str:
    """`file:///abs/path` for a local repository."""
    if not path.startswith("/"):
        raise ValueError(f"file path must be absolute: {path!r}")
    return f"file://{path}"


@dataclass(frozen=True)
class Repository:
    """Where a host's backup sets live and how duplicity reaches and caches them."""

    url: str
    name: str  # --name: the cache folder under archive_dir, e.g. backup_name("web1")
    archive_dir: str  # --archive-dir: duplicity's local metadata cache
    identity_file: str | None = None  # sftp: the private key (path) for the SFTP account
    known_hosts_file: str | None = None  # sftp: the pinned host key of the server (path)
    s3_endpoint_url: str | None = None  # s3: a non-AWS endpoint, for offsite copies
    s3_region: str | None = None  # s3: the bucket's region
    num_retries: int | None = None  # duplicity's attempts at a failing backend (its default: 5)

    def __post_init__(self) -> None:
        ssh_files = [f for f in (self.identity_file, self.known_hosts_file) if f is not None]
        if ssh_files and not self.url.startswith("sftp://"):
            raise ValueError(f"ssh options need an sftp:// URL, not {self.url!r}")
        for file in ssh_files:
            # duplicity's paramiko backend finds these with a regex on one option string.
            if not file.startswith("/") or any(c.isspace() or c in "'\"" for c in file):
                raise ValueError(f"ssh files must be absolute paths without spaces: {file!r}")


def repository_flags(repository: Repository) -> tuple[str, ...]:
    """--name, --archive-dir, and the URL's own options (ssh files, S3 endpoint)."""
    ssh_options = " ".join(
        f"-o{option}={file}"
        for option, file in (
            ("IdentityFile", repository.identity_file),
            ("UserKnownHostsFile", repository.known_hosts_file),
        )
        if file is not None
    )
    return (
        ("--name", repository.name, "--archive-dir", repository.archive_dir)
        # One word with "=": duplicity's documented form for a value that starts with "-".
        + ((f"--ssh-options={ssh_options}",) if ssh_options else ())
        + (("--s3-endpoint-url", repository.s3_endpoint_url) if repository.s3_endpoint_url else ())
        + (("--s3-region-name", repository.s3_region) if repository.s3_region else ())
        + (("--num-retries", str(repository.num_retries)) if repository.num_retries else ())
    )


def verbosity_flags(verbosity: str | None) -> tuple[str, ...]:
    """--verbosity (0-9, or e w n i d, or error warning notice info debug), or nothing."""
    return ("--verbosity", verbosity) if verbosity is not None else ()


@dataclass(frozen=True)
class Selection:
    """What a backup holds: `paths` (absolute, under `root`) minus `excludes` (shell patterns).

    `root` is duplicity's source directory: "/" on a host, so that several paths fit in one
    backup and a restore names files relative to "/".
    """

    paths: tuple[str, ...]
    excludes: tuple[str, ...] = ()
    root: str = "/"
    kept: tuple[str, ...] = ()  # included whatever the excludes say

    def __post_init__(self) -> None:
        if not self.paths:
            raise ValueError("a selection needs at least one path")
        for path in (*self.paths, *self.kept):
            if not _is_within(path, self.root):
                raise ValueError(f"{path!r} is not under the source root {self.root!r}")
        for pattern in self.excludes:
            if not is_inside(pattern, self.paths):
                raise ValueError(f"exclude {pattern!r} is not inside any of {self.paths}")


def is_inside(pattern: str, paths: Sequence[str]) -> bool:
    """Whether exclude `pattern` only matches strictly inside one of `paths` (`**/x`: anywhere).

    Excludes go before includes (see selection_flags), so one that matched a path itself or
    its parent would drop that whole path.
    """
    if pattern.startswith("**/"):
        return True
    excluded = PurePosixPath(pattern)
    return pattern.startswith("/") and any(
        excluded != PurePosixPath(path) and excluded.is_relative_to(path) for path in paths
    )


def selection_flags(selection: Selection) -> tuple[str, ...]:
    """--include each kept path, --exclude each exclude, then --include each path, then
    --exclude '**'. Kept paths (the database dump spool) come first: no exclude hides them.

    duplicity applies the first pattern that matches a file, so excludes come first: after
    `--include /var/www`, `--exclude /var/www/cache` would never match. The final `**`
    leaves out everything not included (the parents of included paths are still scanned).
    """
    return (
        tuple(flag for path in selection.kept for flag in ("--include", path))
        + tuple(flag for pattern in selection.excludes for flag in ("--exclude", pattern))
        + tuple(flag for path in selection.paths for flag in ("--include", path))
        + ("--exclude", "**")
    )


def duplicity_time(moment: datetime | str) -> str:
    """A --time / remove-older-than value: an aware datetime as epoch seconds, or a
    duplicity time string as is ("now", "3D", "2026-11-22T03:53:18Z", "2026-11-22")."""
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        raise ValueError(f"a backup time needs a time zone: {moment!r}")
    return str(int(moment.timestamp()))


def time_flags(moment: datetime | str | None) -> tuple[str, ...]:
    """--time T (the state as of T), or nothing (the latest)."""
    return ("--time", duplicity_time(moment)) if moment is not None else ()


def relative_path(path: str, root: str = "/") -> str:
    """`path` relative to `root`, as --path-to-restore wants it ("etc/nginx" for /etc/nginx)."""
    if not _is_within(path, root):
        raise ValueError(f"{path!r} is not under the source root {root!r}")
    return str(PurePosixPath(path).relative_to(root))


def filelist_entry(path: bytes) -> bytes:
    """`path` (relative to the source root) as one line of an --include-filelist that means
    that file. duplicity reads each line as UTF-8 and as a glob, strips whitespace at both
    ends, skips lines starting with "#", takes a leading "+ " or "- " as a modifier and drops
    surrounding quotes: each glob character goes in a class of its own ([*] [?] [[]), and so
    does a first or last character it would strip or take for syntax. A byte that is not
    UTF-8 becomes "?" (any one character): the line may then also match a name differing
    only there."""
    line = re.sub(r"[\[*?]", lambda found: f"[{found[0]}]", path.decode("utf-8", "surrogateescape"))
    line = re.sub("[\udc80-\udcff]", "?", line)
    edge = frozenset(" \t\n\r\x0b\x0c'\"#+-")
    if line[0] in edge:
        line = f"[{line[0]}]{line[1:]}"
    if line[-1] in edge:
        line = f"{line[:-1]}[{line[-1]}]"
    return line.encode()


def filelist(paths: Iterable[bytes]) -> bytes:
    """An --include-filelist (`--null-separator`) of exactly `paths` (filelist_entry)."""
    return b"".join(filelist_entry(path) + b"\0" for path in paths)


def environment(passphrase: str) -> dict[str, str]:
    """Variables to add to duplicity's environment: the passphrase, and a stable output."""
    if not passphrase:
        raise ValueError("duplicity needs a non-empty passphrase")
    return {**STABLE_OUTPUT_ENV, "PASSPHRASE": passphrase}


def _is_within(path: str, root: str) -> bool:
    return path.startswith("/") and PurePosixPath(path).is_relative_to(root)

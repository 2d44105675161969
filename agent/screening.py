"""What a host's account wrote to the volume is checked before it joins the host's history.

The host may create any file in its `backups` folder over SFTP (that is how it backs up).
Sealing stops it from changing what is there, not from adding files that would break the
history: a file named like a later manifest, a 0-byte new-signatures file (also what a volume
that filled up mid-run leaves), or junk. Before the server cleans up after a run and before
it seals a run's files, each file its account still owns must be one duplicity writes, not
empty, its manifest and signatures must decrypt with the host's passphrase, an incremental
must extend a set the host has, and no time may lie in the future. Anything else is moved,
never deleted, to a root-only quarantine on the volume and named in the run's record.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent import execute
from agent.execute import ANY_EXIT
from agent.files import make_private_dir

STAMP = r"\d{8}T\d{6}Z"
# The names duplicity 3.2.1 gives a set's files (duplicity/file_naming.py), encrypted.
NAMES = re.compile(
    rf"duplicity-full\.(?P<time>{STAMP})\.(?:vol[1-9]\d*\.difftar|manifest|jsonstat)\.gpg"
    rf"|duplicity-full-signatures\.(?P<sigtime>{STAMP})\.sigtar\.gpg"
    rf"|duplicity-inc\.(?P<start>{STAMP})\.to\.(?P<end>{STAMP})\."
    r"(?:vol[1-9]\d*\.difftar|manifest|jsonstat)\.gpg"
    rf"|duplicity-new-signatures\.(?P<sigstart>{STAMP})\.to\.(?P<sigend>{STAMP})\.sigtar\.gpg"
)
# A host whose clock is ahead of the server's by more than this is refused (agent/actions/
# backup.py), so a set time past it can only be planted.
SKEW_TOLERANCE = timedelta(hours=1)
DECRYPTED = (".manifest.gpg", ".sigtar.gpg")  # small, and what every later run reads


@dataclass(frozen=True)
class Refused:
    """A file moved out of the host's history, and why."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


def _time(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def ends_of_sets(names: Iterable[str]) -> set[str]:
    """The times at which the host's sets end (a full's time, an incremental's end)."""
    ends = set()
    for name in names:
        if found := NAMES.fullmatch(name):
            ends.add(found["time"] or found["end"] or found["sigtime"] or found["sigend"])
    return ends - {None}


def set_of(name: str) -> str:
    """The set a file belongs to: `full.T` or `inc.T1.T2` (signatures go with it)."""
    found = NAMES.fullmatch(name)
    if found is None:
        return name
    if found["time"] or found["sigtime"]:
        return f"full.{found['time'] or found['sigtime']}"
    return f"inc.{found['start'] or found['sigstart']}.{found['end'] or found['sigend']}"


def reason_to_refuse(
    folder: Path,
    name: str,
    sealed_ends: set[str],
    decrypted: Mapping[str, bool],
    now: datetime,
    closed_sets: frozenset[str] = frozenset(),
) -> str | None:
    """Why `name` (in `folder`) may not join the history; None if it may. `decrypted`:
    whether each manifest and signatures file decrypts with the host's passphrase."""
    found = NAMES.fullmatch(name)
    if found is None:
        return "not a file duplicity writes"
    path = folder / name
    info = path.lstat()
    if not path.is_file() or path.is_symlink():
        return "not a regular file"
    if info.st_size == 0:
        return "empty (a run that stopped while writing it, or planted)"
    times = [found[key] for key in ("time", "sigtime", "start", "end", "sigstart", "sigend")]
    try:
        if any(_time(stamp) > now + SKEW_TOLERANCE for stamp in times if stamp):
            return "dated in the future"
    except ValueError:
        return "not a real date and time"
    if set_of(name) in closed_sets:
        return "adds to a set that is already complete (its manifest is sealed)"
    start = found["start"] or found["sigstart"]
    if start and start not in sealed_ends:
        return f"extends no set of the host (nothing ends at {start})"
    if name.endswith(DECRYPTED) and not decrypted.get(name, False):
        return "does not decrypt with the host's passphrase (damaged or foreign)"
    return None


def decrypts(path: Path, passphrase: str, home: str) -> bool:
    """Whether `path` decrypts with `passphrase` (symmetric, as duplicity encrypts) into what
    its name says: a manifest that lists volumes, or signatures that are a tar archive. gpg's
    output is streamed and only its head kept (a signatures file may be gigabytes). `home`:
    a gpg home of root's alone (decrypt_all's)."""
    status = Path(tempfile.mkdtemp(prefix="status-", dir=home)) / "status"  # one per call
    argv = ("gpg", "--homedir", home, "--batch", "--quiet", "--no-tty", "--pinentry-mode",
            "loopback", "--passphrase-fd", "0", "--status-file", str(status),
            "--decrypt", str(path))  # fmt: skip
    code, head = execute.head_of_output(argv, input=passphrase + "\n", keep=1 << 20)
    # DECRYPTION_OKAY: it was encrypted, and it decrypted. Read as bytes: a planted file's
    # literal-data name comes back in a PLAINTEXT line as whatever bytes it holds.
    decrypted = status.exists() and b"[GNUPG:] DECRYPTION_OKAY" in status.read_bytes()
    if code != 0 or not decrypted:
        return False
    if path.name.endswith(".manifest.gpg"):  # duplicity/manifest.py's to_string()
        starts = head.startswith((b"Hostname ", b"Localdir ", b"Filelist "))
        return starts and (re.search(rb"(?m)^Volume 1:", head) is not None or len(head) >= 1 << 20)
    if len(head) >= 512 and head[:512] == bytes(512):
        return True  # an empty archive: the signatures of an incremental that changed nothing
    try:  # else a tar's first header
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except tarfile.TarError:
        return False
    return True


def decrypt_all(folder: Path, names: list[str], passphrase: str) -> dict[str, bool]:
    """decrypts() of each of `names`, at once (a few at a time), with one gpg home and agent:
    a run's manifest and signatures are screened in the time of one."""
    if not names:
        return {}
    with tempfile.TemporaryDirectory(prefix="dupstack-screen-") as home:
        try:
            with ThreadPoolExecutor(max_workers=min(4, len(names))) as pool:
                done = pool.map(lambda name: decrypts(folder / name, passphrase, home), names)
                return dict(zip(names, done, strict=True))
        finally:
            execute.run(("gpgconf", "--homedir", home, "--kill", "gpg-agent"), ok_codes=ANY_EXIT)


def _whole(path: Path) -> bool:
    """A regular file with bytes in it: worth decrypting."""
    info = path.lstat()
    return stat.S_ISREG(info.st_mode) and info.st_size > 0


def screen(
    folder: Path,
    names: list[str],
    sealed: list[str],
    passphrase: str,
    quarantine: Path,
    now: datetime | None = None,
) -> list[Refused]:
    """Move every file of `names` that may not join the history to `quarantine`; them.

    `sealed` are the host's files already in its history: an incremental among `names` must
    extend one of them, or a set among `names` that comes before it."""
    now = now or datetime.now(UTC)
    ends = ends_of_sets(sealed)
    closed = frozenset(set_of(name) for name in sealed if name.endswith(".manifest.gpg"))
    refused: list[Refused] = []
    candidates = sorted(names, key=lambda name: (_first_time(name), name))
    worth = [
        n for n in candidates if NAMES.fullmatch(n) and n.endswith(DECRYPTED) and _whole(folder / n)
    ]
    decrypted = decrypt_all(folder, worth, passphrase)
    for name in candidates:
        reason = reason_to_refuse(folder, name, ends, decrypted, now, closed)
        if reason is None:
            ends |= ends_of_sets([name])
            continue
        for level in (quarantine.parent.parent, quarantine.parent, quarantine):
            make_private_dir(level)  # root's alone: what a host planted is nobody's to read
        shutil.move(folder / name, quarantine / name)
        os.chown(quarantine / name, 0, 0, follow_symlinks=False)
        if not (quarantine / name).is_symlink():  # Linux cannot chmod a link itself
            os.chmod(quarantine / name, 0o400)
        refused.append(Refused(name, reason))
    return refused


def _first_time(name: str) -> str:
    """Sets in time order: a full before the incrementals that extend it."""
    found = re.search(STAMP, name)
    return found[0] if found else ""

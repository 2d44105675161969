"""`dupctl drill HOST`: a restore drill, borgmatic's spot check for duplicity sets.

A random sample of the regular files of the host's latest set is restored here, from the
volume, into a scratch folder; each is compared with the host's own file: where that is
unchanged since the backup (same size and mtime) its sha256 must match. The host's file
count now (duplicity's own selection, an incremental --dry-run there) must be within a
tolerance of the set's. A restore that fails, a file that does not come back, a size or hash
that differs, a sample of which nothing could be compared, a count out of tolerance, or no
drill at all (the host busy, no backup) fails the drill, each named. The result is recorded
(status, metrics) and told like a run's.
"""

from __future__ import annotations

import math
import os
import random
import re
import shlex
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from agent import metrics, notify, remote
from agent.config.load import DUMP_SPOOL, Inventory, load_inventory
from agent.duplicity.backup import backup_command
from agent.duplicity.common import filelist
from agent.duplicity.list_files import Entry, list_files_command, parse_file_log
from agent.duplicity.restore import restore_command
from agent.errors import DupstackError
from agent.execute import ANY_EXIT
from agent.files import sha256_of
from agent.host import HostContext, open_host
from agent.locks import host_lock
from agent.paths import ServerPaths
from agent.runlog import DrillRecord, open_log, stamp, write_drill
from agent.screening import NAMES
from agent.sealing import sealed

# On the host: for each hex-encoded path on stdin, "size mtime sha256" of the regular file
# there, or "-" (gone, or no longer a regular file). Any name, as bytes.
HASH_SCRIPT = """\
import hashlib, os, stat, sys
for line in sys.stdin.read().split():
    path = bytes.fromhex(line)
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            raise OSError
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        print(info.st_size, int(info.st_mtime), digest.hexdigest())
    except OSError:
        print("-")
"""
STATISTIC = re.compile(r"^(SourceFiles|NewFiles|ChangedFiles) (\d+)$", re.MULTILINE)
HOST_TIMEOUT = 3600.0
Say = Callable[[str], None]


@dataclass(frozen=True)
class DrillOptions:
    sample_percent: float  # of the set's regular files
    max_files: int  # at most this many restored
    count_tolerance: float  # percent the host's file count may differ from the set's


def drill(
    paths: ServerPaths,
    ssh: remote.Ssh,
    name: str,
    options: DrillOptions,
    say: Callable[[str], None],
) -> DrillRecord:
    """Drill host `name` (under its lock: never beside its backup); the recorded result."""
    if not 0 < options.sample_percent <= 100:
        raise ValueError("sample_percent must be in (0, 100]")
    started = datetime.now(UTC)
    clock = time.monotonic()
    inventory = load_inventory(paths)
    inventory.host(name)  # an unknown host is no drill to record
    log_name: str | None = None
    try:
        with host_lock(paths, name), open_log(paths, name, started, "drill") as log:
            log_name = log.name
            sets = open_host(paths, name)
            scratch_root = paths.state_dir / "drill"
            scratch_root.mkdir(mode=0o700, parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=scratch_root, prefix=f"{name}-") as scratch:
                fields = _drill(sets, ssh, Path(scratch), options, log, say)
    except DupstackError as error:  # no drill is a failed drill, recorded and told as one
        fields = {"set_time": None, "result": "fail", "files_in_set": 0, "files_on_host": None,
                  "sampled": 0, "compared": 0, "changed": 0,
                  "failures": [f"no drill: {error.message.splitlines()[0]}"]}  # fmt: skip
        _record(paths, inventory, DrillRecord(host=name, start=stamp(started), log=log_name,
                duration=round(time.monotonic() - clock, 1), **fields), say)  # fmt: skip
        raise
    record = DrillRecord(
        host=name,
        start=stamp(started),
        duration=round(time.monotonic() - clock, 1),
        log=log_name,
        **fields,
    )
    _record(paths, inventory, record, say)
    return record


def _record(paths: ServerPaths, inventory: Inventory, record: DrillRecord, say: Say) -> None:
    """The drill in status and metrics, and told (a failure always)."""
    write_drill(paths, record)
    try:
        metrics.refresh(paths, inventory)
    except DupstackError as error:
        say(f"warning: {error.message}")
    _tell(paths, inventory, record, say)


def _tell(paths: ServerPaths, inventory: Inventory, record: DrillRecord, say: Say) -> None:
    """A failed drill is told like a failed run (a passed one with `success: true`)."""
    event = notify.Event(
        action="drill",
        result="ok" if record.result == "pass" else "failed",
        host=record.host,
        error="; ".join(record.failures[:3]) or None,
        hint=None if record.result == "pass" else f"dupctl verify {record.host}",
        log=record.log,
        details=(f"set: {record.set_time}", f"compared: {record.compared} of {record.sampled}"),
    )
    if notify.should_tell(inventory, event):
        try:
            notify.tell(paths, inventory, event)
        except DupstackError as error:
            say(f"warning: {error.message}")


def _drill(
    sets: HostContext,
    ssh: remote.Ssh,
    scratch: Path,
    options: DrillOptions,
    log: IO[str],
    say: Callable[[str], None],
) -> dict[str, object]:
    """The drill's findings, as DrillRecord fields (result among them)."""
    name = sets.name
    listing = scratch / "files.log"
    say(f"{name}: listing the latest set")
    sets.run_here(list_files_command(sets.here, log_file=str(listing)))
    # not the spool (dumps, metadata record), made for the backup and gone from the host
    # after, nor its folders (/var, /var/backups) where only the spool brought them in
    spool = os.fsencode(DUMP_SPOOL)
    chosen = [os.fsencode(path).rstrip(b"/") for path in sets.host.paths]

    def selected(path: bytes) -> bool:  # in the set with or without the spool
        return any(path == top or path.startswith(top + b"/") or top.startswith(path + b"/")
                   or path == b"/" for top in chosen)  # fmt: skip

    entries = [
        entry
        for entry in parse_file_log(listing.read_text(errors="surrogateescape"))
        if entry.path != spool
        and not entry.path.startswith(spool + b"/")
        and (selected(entry.path) or not spool.startswith(entry.path + b"/"))
    ]
    regular = [entry for entry in entries if entry.type == "reg"]
    wanted = min(options.max_files, math.ceil(len(regular) * options.sample_percent / 100))
    sample = random.sample(regular, wanted)
    found: dict[str, object] = {"set_time": _latest_set(sets), "files_in_set": len(entries),
                                "sampled": len(sample), "files_on_host": None,
                                "compared": 0, "changed": 0}  # fmt: skip
    failures: list[str] = []
    restored = scratch / "restored"
    if sample:
        listed = scratch / "sample"
        listed.write_bytes(filelist(entry.path.lstrip(b"/") for entry in sample))
        argv = restore_command(sets.here, str(restored), filelist=str(listed))
        say(f"{name}: restoring {len(sample)} of {len(regular)} files here")
        log.write(f"dupctl: {shlex.join(argv)}\n")
        try:
            sets.run_here(argv)
        except DupstackError as error:
            failures.append(f"restore of the sample failed: {error.message.splitlines()[0]}")
    try:
        with remote.session(ssh, sets.host) as tenant:
            if sample and not failures:
                say(f"{name}: comparing with the host's files")
                failures += _compare(tenant, sample, restored, found)
            found["files_on_host"] = _count_on_host(sets, tenant, log)
    except DupstackError as error:
        failures.append(f"{name} could not be compared: {error.message.splitlines()[0]}")
    if sample and not failures and found["compared"] == 0:
        failures.append(
            f"none of the {len(sample)} sampled files is unchanged on the host since the set: "
            "nothing could be compared (sample more with --sample-percent, or drill after the "
            "next backup)"
        )
    on_host = found["files_on_host"]
    if isinstance(on_host, int):
        apart = abs(on_host - len(entries)) * 100 / max(on_host, 1)
        if apart > options.count_tolerance:
            failures.append(
                f"{len(entries)} files in the set but {on_host} on the host now: {apart:.0f}% "
                f"apart (tolerance {options.count_tolerance:g}%)"
            )
    for failure in failures:
        log.write(f"dupctl: drill: {failure}\n")
    return {**found, "result": "fail" if failures else "pass", "failures": failures}


def _compare(
    tenant: remote.Session, sample: list[Entry], restored: Path, found: dict[str, object]
) -> list[str]:
    """Each sampled file restored here against the host's: failures; counts into `found`."""
    done = tenant.run(("python3", "-c", HASH_SCRIPT),
                      input="\n".join(entry.path.hex() for entry in sample) + "\n",
                      timeout=HOST_TIMEOUT)  # fmt: skip
    answers = done.stdout.splitlines()
    failures = []
    compared = changed = 0
    for entry, answer in zip(sample, answers, strict=True):
        shown = entry.path.decode(errors="backslashreplace")
        here = restored / entry.path.decode(errors="surrogateescape").lstrip("/")
        if not here.is_file():
            failures.append(f"{shown}: not restored")
            continue
        if answer == "-":
            changed += 1  # gone on the host since the backup
            continue
        size, mtime, digest = answer.split()
        if int(mtime) != int(entry.mtime.timestamp()):
            changed += 1  # modified on the host since the set was made
            continue
        compared += 1  # unchanged since the set: what comes back must be the host's file
        if here.stat().st_size != int(size):
            failures.append(f"{shown}: restored {here.stat().st_size} bytes, the host has {size}")
        elif sha256_of(here) != digest:
            failures.append(f"{shown}: restored content differs from the host's unchanged file")
    found.update(compared=compared, changed=changed)
    return failures


def _count_on_host(sets: HostContext, tenant: remote.Session, log: IO[str]) -> int | None:
    """What a backup would take from the host now, by duplicity's own count (an incremental
    --dry-run: nothing is written). Its dry run counts each new or changed file twice in
    SourceFiles (diffdir.DummyBlockIter counts them again), so those are taken off once;
    a directory among them makes the count one lower, which the tolerance absorbs."""
    argv = backup_command(sets.on_host, sets.selection, dry_run=True, volsize=sets.host.volsize)
    log.write(f"dupctl: on {sets.name}: {shlex.join(argv)}\n")
    sets.private_caches(tenant)
    done = tenant.run(argv, secret=sets.passphrase, log=log, ok_codes=ANY_EXIT, stable=True,
                      timeout=HOST_TIMEOUT)  # fmt: skip
    sets.check(done, log=log.name)
    counted = {name: int(value) for name, value in STATISTIC.findall(done.stdout)}
    if "SourceFiles" not in counted:
        return None
    return counted["SourceFiles"] - counted.get("NewFiles", 0) - counted.get("ChangedFiles", 0)


def _latest_set(sets: HostContext) -> str | None:
    """The time of the host's newest complete set (its sealed manifest's name)."""
    times = [
        found["end"] or found["time"]
        for file in sealed(sets.paths, sets.host)
        if (found := NAMES.fullmatch(file)) and file.endswith(".manifest.gpg")
    ]
    if not times:
        return None
    return stamp(datetime.strptime(max(times), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC))

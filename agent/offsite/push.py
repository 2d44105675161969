"""Copy a host's sealed sets to an offsite target (S3: agent/offsite/s3.py, Swift:
agent/offsite/swift.py): the encrypted files as they are, with duplicity's own names, so the
copy is itself a duplicity target.

Only sealed files go (screened, complete: agent/screening.py). Volumes and signatures go
first, manifests last: a set whose manifest is offsite has all its files there (duplicity
counts a set without its manifest as incomplete). Every object is checked after upload (size,
and the sha256 kept in its metadata) and recorded in a ledger on this server
(state_dir/offsite/TARGET/HOST.json), so the next push skips what is there and matches, and
a push killed at any point is completed by the next. An object that changed offsite (its
ETag is not the one recorded, or its sha256 differs) is uploaded again and named.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from agent.config.load import HostConfig, OffsiteTarget
from agent.errors import OffsiteFailed
from agent.files import sha256_of
from agent.offsite.credentials import read_credentials
from agent.offsite.ledger import read_ledger, save_ledger
from agent.offsite.s3 import S3Store
from agent.paths import ServerPaths
from agent.repository import backups_dir
from agent.runlog import stamp
from agent.sealing import sealed

if TYPE_CHECKING:
    from agent.offsite.swift import SwiftStore

ESCROW_HOST = "_escrow"  # the key escrow's folder on a target (no host name starts with _)
MAX_SINGLE_PUT = 5 << 30  # S3's and Swift's largest single PUT
Say = Callable[[str], None]
# Meter(label, total bytes) -> advance(bytes sent): a progress bar, for terminals
Meter = Callable[[str, int], Callable[[int], None]]
Store: TypeAlias = "S3Store | SwiftStore"


@dataclass
class PushResult:
    host: str
    target: str
    copied: int = 0
    skipped: int = 0
    bytes: int = 0
    replaced: list[str] = field(default_factory=list)  # changed offsite: uploaded again
    aborted: int = 0  # what a killed push had left: multipart uploads (S3), segments (Swift)


def open_store(paths: ServerPaths, target: OffsiteTarget) -> Store:
    """The target's store, its credentials read from their root-only file."""
    credentials = read_credentials(paths, target)
    if target.type == "swift":
        # imported here: keystoneauth1 and swiftclient only load for a Swift target
        from agent.offsite.swift import SwiftStore

        return SwiftStore(target, credentials)
    return S3Store(target, credentials)


def storage_class(target: OffsiteTarget, name: str) -> str:
    """Volumes in the target's class; manifests, signatures and the rest stay STANDARD, so
    listings and incrementals never need a thaw (a swift target's class is STANDARD: Swift
    has none)."""
    return target.storage_class if ".difftar." in name else "STANDARD"


def push_host(
    paths: ServerPaths,
    host: HostConfig,
    target: OffsiteTarget,
    say: Say,
    meter: Meter | None = None,
) -> PushResult:
    """Copy what of the host's sealed files the target lacks (its lock held by the caller)."""
    store = open_store(paths, target)
    folder = backups_dir(paths, host)
    names = sorted(sealed(paths, host))
    result = PushResult(host.name, target.name)
    files = {name: folder / name for name in names}
    _push(store, paths, target, host.name, files, _part_size(host), result, say, meter)
    return result


def push_escrow(paths: ServerPaths, target: OffsiteTarget, say: Say) -> PushResult:
    """The passcode escrow and its README (already encrypted) to `_escrow/` on the target."""
    store = open_store(paths, target)
    found = sorted(paths.volume_state_dir.glob("escrow*"))
    result = PushResult(ESCROW_HOST, target.name)
    files = {file.name: file for file in found if file.is_file()}
    files |= {f.name: f for f in [paths.volume_state_dir / "README.txt"] if f.is_file()}
    _push(store, paths, target, ESCROW_HOST, files, 64 << 20, result, say)
    return result


def _push(
    store: Store,
    paths: ServerPaths,
    target: OffsiteTarget,
    host: str,
    files: dict[str, Path],
    part_size: int,
    result: PushResult,
    say: Say,
    meter: Meter | None = None,
) -> None:
    ledger = read_ledger(paths, target.name, host)
    recorded: dict[str, Any] = ledger["objects"]
    result.aborted = store.abort_uploads(host)
    there = store.listing(host)
    todo: list[str] = []
    sizes: dict[str, int] = {}
    for name, file in list(files.items()):
        try:
            info = file.stat()
        except FileNotFoundError:  # pruned on the volume meanwhile
            del files[name]
            continue
        size, mtime = info.st_size, info.st_mtime_ns
        sizes[name] = size
        remote, entry = there.get(name), recorded.get(name)
        if entry and entry.get("pruned"):  # removed by the target's own retention
            result.skipped += 1
            continue
        if remote and entry and (remote.size, remote.etag, mtime) == (
            entry["size"], entry["etag"], entry.get("mtime_ns")
        ) and size == entry["size"]:  # fmt: skip
            result.skipped += 1
            continue
        if remote and not entry and remote.size == size:  # there, never recorded: check it
            head = store.head(host, name)
            digest = sha256_of(file)
            wanted = storage_class(target, name)
            if (head.sha256, head.storage_class) == (digest, wanted) and head.checksum in (
                None, digest
            ):  # fmt: skip
                recorded[name] = _entry(size, digest, remote.etag, wanted, mtime)
                result.skipped += 1
                continue
        if remote or entry:  # changed there, or recorded as copied and gone: named
            result.replaced.append(name)
        todo.append(name)
    lock = threading.Lock()
    sent = [0]
    saved = [time.monotonic()]
    total = sum(sizes[name] for name in todo)
    advance = meter(f"{host} -> {target.name}", total) if meter and todo else None

    def sending(count: int) -> None:
        _add(sent, lock, count)
        if advance:
            advance(count)

    def copy(name: str) -> None:
        file = files[name]
        try:
            digest = sha256_of(file)
        except FileNotFoundError:  # pruned on the volume meanwhile: nothing to copy
            return
        wanted = storage_class(target, name)
        store.upload(
            host, name, file, sha256=digest, storage_class=wanted, part_size=part_size,
            progress=sending,
        )  # fmt: skip
        head = store.head(host, name)
        size = file.stat().st_size
        if (
            (head.size, head.sha256) != (size, digest)
            or head.checksum not in (None, digest)
            or head.storage_class != wanted
        ):
            raise OffsiteFailed(
                f"offsite {target.name}: {store.key(host, name)} does not read back as sent "
                f"({head.size} of {size} bytes, class {head.storage_class})",
                hint="the next push uploads it again; if it persists, check the service",
            )
        with lock:
            recorded[name] = _entry(size, digest, head.etag, wanted, file.stat().st_mtime_ns)
            # at most once a second (a rewrite per object is quadratic): what a killed push
            # copied but did not record is checked by the next (there, never recorded)
            if time.monotonic() - saved[0] >= 1.0:
                save_ledger(paths, target.name, host, ledger)
                saved[0] = time.monotonic()
            result.copied += 1
            result.bytes += size
            if result.copied % 10 == 0 or result.copied == len(todo):
                say(f"{host} -> {target.name}: {result.copied} of {len(todo)} objects, "
                    f"{sent[0] >> 20} MiB")  # fmt: skip

    first = [name for name in todo if not name.endswith(".manifest.gpg")]
    last = [name for name in todo if name.endswith(".manifest.gpg")]  # once the rest is there
    if todo:
        say(f"{host} -> {target.name}: {len(todo)} objects to copy, {result.skipped} there")
    with ThreadPoolExecutor(max_workers=target.concurrency) as pool:
        try:
            for wave in (first, last):
                for done in [pool.submit(copy, name) for name in wave]:
                    done.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the rest waits for the next push
            with lock:
                save_ledger(paths, target.name, host, ledger)  # what was copied, checked
            raise
    ledger["last_push"] = stamp(datetime.now(UTC))
    save_ledger(paths, target.name, host, ledger)


def _part_size(host: HostConfig) -> int:
    """One PUT per volume: the multipart (S3) or large-object (Swift) threshold a little
    above the volume size."""
    return min(MAX_SINGLE_PUT, (host.volsize + 16) << 20)


def _entry(size: int, digest: str, etag: str, storage_class: str, mtime_ns: int) -> dict[str, Any]:
    return {"size": size, "sha256": digest, "etag": etag, "storage_class": storage_class,
            "mtime_ns": mtime_ns}  # fmt: skip


def _add(sent: list[int], lock: threading.Lock, count: int) -> None:
    with lock:
        sent[0] += count

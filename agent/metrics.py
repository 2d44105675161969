"""The Prometheus textfile (node-exporter's textfile collector serves it): per host its last
run, last success and last drill, its sets on the volume and its quarantine.

Everything comes from this server's own files (run records, file names and owners on the
volume): nothing is decrypted and no host is contacted, so it is cheap enough to rewrite after
every run and drill, and right while hosts are down. Offsite: per host and target, the last
push and the files not yet copied (the lag).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from agent import quota
from agent.config.load import HostConfig, Inventory
from agent.errors import DupstackError
from agent.files import write_atomic
from agent.offsite.ledger import read_ledger
from agent.paths import ServerPaths
from agent.repository import backups_dir
from agent.runlog import read_drill, read_last_success, read_status
from agent.screening import NAMES
from agent.sealing import sealed

FILE_MODE = 0o644  # node-exporter reads it as its own user
DIR_MODE = 0o755
PREFIX = "dupstack_"
# Per host (label `host`); a host has only the series it has data for (a host that never ran
# has no last_run_*, one without a quota no quota_bytes, none limit_bytes without a volume).
HOST_METRICS = {
    "last_success_timestamp_seconds": "When the host's last successful run ended (Unix time).",
    "last_run_timestamp_seconds": "When the host's last run ended (Unix time).",
    "last_run_success": "Whether the host's last run went well (1) or failed (0).",
    "last_run_duration_seconds": "How long the host's last run took.",
    "last_run_quarantined_files": "Files the host's last run moved to the quarantine.",
    "last_run_hook_failures": "Hook steps that failed in the host's last run.",
    "volume_usage_bytes": "Bytes the host's backup files take on the volume (as quota counts).",
    "quota_bytes": "Most bytes the host's backup files may take (only when it has a quota).",
    "limit_bytes": "Most bytes the host's files may take: its quota, or its share of the volume.",
    "sets": "Complete backup sets of the host (sealed manifest) in a chain.",
    "chains": "Backup chains of the host (each starts with a full set).",
    "newest_chain_sets": "Sets in the host's newest chain (its full and the incrementals since).",
    "quarantined_files": "Files in the host's quarantine on the volume now.",
    "last_drill_timestamp_seconds": "When the host's last restore drill ended (Unix time).",
    "last_drill_success": "Whether the host's last restore drill passed (1) or failed (0).",
    "last_drill_compared_files": "Files the host's last restore drill compared with the host's.",
}


def render(paths: ServerPaths, inventory: Inventory) -> str:
    """The textfile's content for every host of `inventory`, as the server's files say now."""
    registry = CollectorRegistry()
    Gauge(f"{PREFIX}hosts", "Hosts in the inventory.", registry=registry).set(len(inventory.hosts))
    gauges = {
        name: Gauge(f"{PREFIX}{name}", text, ["host"], registry=registry)
        for name, text in HOST_METRICS.items()
    }
    for name, host in sorted(inventory.hosts.items()):
        for metric, value in host_values(paths, host, inventory).items():
            gauges[metric].labels(host=name).set(value)
    _offsite(paths, inventory, registry)
    generated = "When these values were read (Unix time): how fresh they are."
    Gauge(f"{PREFIX}metrics_generated_timestamp_seconds", generated, registry=registry).set(
        time.time()
    )
    return generate_latest(registry).decode()


def _offsite(paths: ServerPaths, inventory: Inventory, registry: CollectorRegistry) -> None:
    """Per host and target: the last checked push and the sealed files not yet offsite
    (the push ledgers, agent/offsite/ledger.py); a damaged ledger shows no series."""
    if not inventory.offsite:
        return
    labels = ["host", "target"]
    last = Gauge(f"{PREFIX}offsite_last_push_timestamp_seconds",
                 "When the host's last push to the target ended (Unix time).", labels,
                 registry=registry)  # fmt: skip
    pending = Gauge(f"{PREFIX}offsite_files_pending",
                    "Sealed files of the host not on the target yet (the offsite lag).", labels,
                    registry=registry)  # fmt: skip
    for target in sorted(inventory.offsite):
        for name, host in sorted(inventory.hosts.items()):
            try:
                ledger = read_ledger(paths, target, name)
            except DupstackError:
                continue
            if ledger["last_push"]:
                last.labels(host=name, target=target).set(_seconds(ledger["last_push"]))
            copied = ledger["objects"]
            missing = [file for file in sealed(paths, host) if file not in copied]
            pending.labels(host=name, target=target).set(len(missing))


def host_values(paths: ServerPaths, host: HostConfig, inventory: Inventory) -> dict[str, float]:
    """The host's value of each metric of HOST_METRICS it has data for."""
    chains = chain_lengths(sealed(paths, host))
    values: dict[str, float] = {
        "volume_usage_bytes": _usage(backups_dir(paths, host)),
        "sets": sum(chains),
        "chains": len(chains),
        "newest_chain_sets": chains[-1] if chains else 0,
        "quarantined_files": _quarantined(paths, host.name),
    }
    if host.quota is not None:
        values["quota_bytes"] = host.quota
    if paths.mount_point.is_dir():
        room = quota.limit(host.name, inventory.quotas, paths.mount_point, inventory.reserve)
        values["limit_bytes"] = room.size
    if last := read_status(paths, host.name):
        hooks = last.get("hooks", [])  # records of older releases lack hooks and quarantined
        values |= {
            "last_run_timestamp_seconds": _seconds(last["end"]),
            "last_run_success": last["result"] == "ok",
            "last_run_duration_seconds": last["duration"],
            "last_run_quarantined_files": len(last.get("quarantined", [])),
            "last_run_hook_failures": sum(hook["result"] == "failed" for hook in hooks),
        }
    if success := read_last_success(paths, host.name):
        values["last_success_timestamp_seconds"] = _seconds(success["end"])
    if drill := read_drill(paths, host.name):
        values |= {
            "last_drill_timestamp_seconds": _seconds(drill["start"]) + drill["duration"],
            "last_drill_success": drill["result"] == "pass",
            "last_drill_compared_files": drill["compared"],
        }
    return values


def chain_lengths(names: Iterable[str]) -> list[int]:
    """Sets in each chain that the manifests among `names` make, oldest chain first: a full
    starts a chain, an incremental extends the chain whose newest set ends where it starts
    (as duplicity links them); one that extends nothing is in no chain."""
    manifests = [
        found
        for name in names
        if name.endswith(".manifest.gpg") and (found := NAMES.fullmatch(name))
    ]
    # In time order, and a full before an incremental that starts at its time.
    manifests.sort(key=lambda found: (found["time"] or found["start"], found[0]))
    lengths: list[int] = []
    chain_ending_at: dict[str, int] = {}  # a set's end time -> the index of its chain
    for found in manifests:
        if found["time"]:
            lengths.append(1)
            chain_ending_at[found["time"]] = len(lengths) - 1
        elif (chain := chain_ending_at.pop(found["start"], None)) is not None:
            lengths[chain] += 1
            chain_ending_at[found["end"]] = chain
    return lengths


def refresh(paths: ServerPaths, inventory: Inventory) -> Path | None:
    """Rewrite the textfile from what the server's files say now; where (None: metrics off).

    Hosts run in parallel and each finished run refreshes: one lock around render and
    replace makes the file a later refresh leaves also the later render (an atomic rename
    alone would let an older render land last); readers only ever see a whole file."""
    if inventory.metrics_textfile is None:
        return None
    file = paths.under(inventory.metrics_textfile)
    try:
        with _locked(paths):
            _make_dirs(file.parent)
            write_atomic(file, render(paths, inventory), FILE_MODE)
    except OSError as error:
        where = ": ".join(str(part) for part in (error.filename, error.strerror) if part)
        raise DupstackError(
            f"metrics not written to {file}: {where}",
            hint=f"fix that path, or set metrics.textfile in {inventory.file} (null: no metrics)",
        ) from None
    return file


@contextlib.contextmanager
def _locked(paths: ServerPaths) -> Iterator[None]:
    """Hold the metrics lock (state_dir/locks/metrics.lock), waiting for another refresh."""
    directory = paths.state_dir / "locks"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / "metrics.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _make_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents 0755 whatever the umask: node-exporter
    must reach the file."""
    for level in reversed([directory, *directory.parents]):
        if not level.exists():
            level.mkdir(exist_ok=True)
            level.chmod(DIR_MODE)


def _usage(folder: Path) -> int:
    """Bytes of the host's folder on disk; 0 when it is missing (no sets there either)."""
    try:
        return quota.usage(folder)
    except FileNotFoundError:
        return 0


def _quarantined(paths: ServerPaths, host: str) -> int:
    """Files in the host's quarantine: `.dupstack/quarantine/HOST/STAMP/NAME` (agent/host.py)."""
    try:
        batches = [entry.path for entry in os.scandir(paths.volume_state_dir / "quarantine" / host)]
    except FileNotFoundError:
        return 0
    return sum(
        not entry.is_dir(follow_symlinks=False)
        for batch in batches
        if os.path.isdir(batch)
        for entry in os.scandir(batch)
    )


def _seconds(moment: str) -> float:
    """`2026-11-22T03:53:18Z` (agent/runlog.py's stamp) as Unix time."""
    return datetime.fromisoformat(moment).timestamp()

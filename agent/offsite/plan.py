"""The offsite cost planner's arithmetic (`dupctl offsite plan`): what a host's duplicity sets,
and a per-file sync of the same data, cost as objects in S3 or Swift. Pure: sizes and prices
in, figures out; nothing is read here.

The model, from duplicity 3.2.1's source:
- A set is its difftar volumes (--volsize MiB of encrypted output each, the last one shorter),
  one manifest and one signatures file (no jsonstat: dupstack does not pass --jsonstat). Only
  the volumes go to the storage class; the rest stays in STANDARD, so listings and
  incrementals never need a thaw. One PUT per object (a volume is at most 5 GiB).
- Signatures (diffdir.get_block_size, _librsyncmodule.c): per file a 12-byte librsync header
  and 12 bytes (4 rolling + 8 MD4) per block of isqrt(size) rounded up to 512 bytes, plus the
  file's 512-byte tar header in the sigtar (before gpg compresses it: an upper estimate).
- A manifest (manifest.py) lists each new or changed file on a line ("    new      PATH"):
  64 bytes a file (a 50-character path) plus 1 KiB of header and volume lines.
- An incremental stores its changed files whole (a rewritten file's delta is the file; an
  edit inside a large file stores less) and writes at least one volume.
- Backups run daily, a full every incrementals_per_full + 1 days; the offsite retention keeps
  fulls_kept chains and deletes the oldest when the next full arrives.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import UsageError
from agent.screening import NAMES, set_of

STORAGE_CLASSES = ("STANDARD", "STANDARD_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE", "swift")
MIB = 1 << 20
MAX_VOLSIZE_MIB = 5 * 1024  # S3's largest single PUT: beyond it a volume is a multipart upload
DAYS_PER_MONTH = 30  # as AWS prorates its minimum storage durations
MANIFEST_HEADER = 1024
MANIFEST_LINE = 64
SIGTAR_HEADER = 512
LIBRSYNC_HEADER = 12
LIBRSYNC_BLOCK = 12


@dataclass(frozen=True)
class Tier:
    """A way to read an object back: a Glacier retrieval tier, or `instant`."""

    name: str
    usd_per_gb: float
    requests_usd_per_1000: float  # restore requests (a thaw), on top of the GETs
    hours: float  # typical time until the objects can be read


@dataclass(frozen=True)
class StorageClass:
    """The prices of one storage class (prices.json's keys)."""

    name: str
    storage_usd_per_gb_month: float
    put_usd_per_1000: float
    get_usd_per_1000: float
    min_storage_days: int
    min_billable_bytes: int
    overhead_bytes_in_class: int
    overhead_bytes_in_metadata_class: int
    retrieval: tuple[Tier, ...]


@dataclass(frozen=True)
class Prices:
    """What one plan is priced with: the class of the volumes and the class of the rest."""

    as_of: str
    region: str | None
    bytes_per_gb: int
    egress_usd_per_gb: float
    volumes: StorageClass
    metadata: StorageClass


@dataclass(frozen=True)
class Objects:
    """`count` objects of `size` bytes each."""

    count: int
    size: int


@dataclass(frozen=True)
class Upload:
    """What one set, or one per-file sync, puts in the bucket: `stored` objects in the chosen
    storage class, `metadata` objects (manifest, signatures) in the metadata class."""

    stored: tuple[Objects, ...]
    metadata: tuple[Objects, ...] = ()

    @property
    def objects(self) -> int:
        return sum(group.count for group in self.stored + self.metadata)

    @property
    def stored_objects(self) -> int:
        return sum(group.count for group in self.stored)

    @property
    def stored_bytes(self) -> int:
        return sum(group.count * group.size for group in self.stored)

    @property
    def bytes(self) -> int:
        return self.stored_bytes + sum(group.count * group.size for group in self.metadata)


@dataclass(frozen=True)
class Workload:
    """A hypothetical host: `files` of `file_size` bytes, `change_percent` of them changed
    between two backups; `compression`: how many times smaller duplicity makes the data."""

    files: int
    file_size: int
    compression: float = 1.0
    volsize_mib: int = 200
    change_percent: float = 1.0

    @property
    def changed_files(self) -> int:
        return math.ceil(self.files * self.change_percent / 100)


@dataclass(frozen=True)
class Retention:
    """The offsite retention: `fulls_kept` chains, each a full and its daily incrementals."""

    fulls_kept: int = 4
    incrementals_per_full: int = 6

    @property
    def full_every_days(self) -> int:
        return self.incrementals_per_full + 1


def merge_prices(
    base: Mapping[str, Any], override: Mapping[str, Any], source: str, where: str = ""
) -> dict[str, Any]:
    """`base` with the keys of `override` in its place, key by key. A key that `base` lacks is
    refused: a misspelt one would silently change nothing."""
    merged = dict(base)
    for key, value in override.items():
        path = f"{where}.{key}" if where else key
        if key not in base:
            close = difflib.get_close_matches(key, list(base), n=1)
            raise UsageError(
                f"{source}: {path}: no such price"
                + (f" (did you mean {where + '.' if where else ''}{close[0]}?)" if close else ""),
                hint="the keys are those of agent/data/prices.json",
            )
        if isinstance(base[key], Mapping):
            if not isinstance(value, Mapping):
                raise UsageError(f"{source}: {path}: expected a mapping, not {value!r}")
            merged[key] = merge_prices(base[key], value, source, path)
        else:
            merged[key] = value
    return merged


def prices_for(document: Mapping[str, Any], storage_class: str, source: str) -> Prices:
    """The prices of `storage_class` and of its service's metadata class, checked."""
    for name, service in document["services"].items():
        classes = service["classes"]
        if storage_class not in classes:
            continue
        where = f"services.{name}"
        metadata = service["metadata_class"]
        if metadata not in classes:
            raise UsageError(f"{source}: {where}.metadata_class: no class {metadata!r} in it")
        region = service["region"]
        if region is not None and not isinstance(region, str):
            raise UsageError(f"{source}: {where}.region: expected a name or null")
        return Prices(
            as_of=str(document["as_of"]),
            region=region,
            bytes_per_gb=int(_number(document, "bytes_per_gb", "", source, low=1)),
            egress_usd_per_gb=_number(service, "egress_usd_per_gb", where, source),
            volumes=_storage_class(storage_class, classes, f"{where}.classes", source),
            metadata=_storage_class(metadata, classes, f"{where}.classes", source),
        )
    raise UsageError(f"{source}: no prices for the storage class {storage_class!r}")


def _storage_class(name: str, classes: Mapping[str, Any], where: str, source: str) -> StorageClass:
    entry, where = classes[name], f"{where}.{name}"
    tiers = tuple(
        Tier(
            tier,
            _number(prices, "usd_per_gb", f"{where}.retrieval.{tier}", source),
            _number(prices, "requests_usd_per_1000", f"{where}.retrieval.{tier}", source),
            _number(prices, "hours", f"{where}.retrieval.{tier}", source),
        )
        for tier, prices in entry["retrieval"].items()
    )
    return StorageClass(
        name=name,
        storage_usd_per_gb_month=_number(entry, "storage_usd_per_gb_month", where, source),
        put_usd_per_1000=_number(entry, "put_usd_per_1000", where, source),
        get_usd_per_1000=_number(entry, "get_usd_per_1000", where, source),
        min_storage_days=int(_number(entry, "min_storage_days", where, source)),
        min_billable_bytes=int(_number(entry, "min_billable_bytes", where, source)),
        overhead_bytes_in_class=int(_number(entry, "overhead_bytes_in_class", where, source)),
        overhead_bytes_in_metadata_class=int(
            _number(entry, "overhead_bytes_in_metadata_class", where, source)
        ),
        retrieval=tiers,
    )


def _number(entry: Mapping[str, Any], key: str, where: str, source: str, low: float = 0) -> float:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= low:
        path = f"{where}.{key}" if where else key
        raise UsageError(f"{source}: {path}: expected a number of at least {low:g}, not {value!r}")
    return float(value)


def volumes(data: int, volsize: int) -> tuple[Objects, ...]:
    """The difftar volumes of `data` bytes: full ones of `volsize`, then the rest; at least
    one (duplicity writes a volume even when nothing changed)."""
    whole, rest = divmod(data, volsize)
    groups = (Objects(whole, volsize), Objects(1, rest)) if rest else (Objects(whole, volsize),)
    return tuple(group for group in groups if group.count) or (Objects(1, 0),)


def signature_bytes(file_size: int) -> int:
    """One file's share of a signatures file (the module's docstring says why)."""
    block = (max(1, math.isqrt(file_size)) + 511) // 512 * 512
    return SIGTAR_HEADER + LIBRSYNC_HEADER + LIBRSYNC_BLOCK * math.ceil(file_size / block)


def _set(files: int, workload: Workload) -> Upload:
    """A set that stores `files` of the workload's files."""
    data = math.ceil(files * workload.file_size / workload.compression)
    return Upload(
        stored=volumes(data, workload.volsize_mib * MIB),
        metadata=(
            Objects(1, MANIFEST_HEADER + MANIFEST_LINE * files),
            Objects(1, files * signature_bytes(workload.file_size)),
        ),
    )


def full_set(workload: Workload) -> Upload:
    return _set(workload.files, workload)


def incremental_set(workload: Workload) -> Upload:
    return _set(workload.changed_files, workload)


def per_file_sync(files: int, file_size: int) -> Upload:
    """The same data copied file by file: one object per file, as it is (not compressed)."""
    return Upload(stored=(Objects(files, file_size),))


def sets_on_volume(sizes: Mapping[str, int]) -> dict[str, Upload]:
    """The sets among duplicity's files named in `sizes` (name -> bytes), oldest first, by
    set (`full.T`, `inc.T1.T2`); files duplicity does not write are left out."""
    grouped: dict[str, tuple[list[Objects], list[Objects]]] = {}
    for name, size in sizes.items():
        if NAMES.fullmatch(name) is None:
            continue
        stored, metadata = grouped.setdefault(set_of(name), ([], []))
        (stored if ".difftar." in name else metadata).append(Objects(1, size))
    return {
        key: Upload(tuple(stored), tuple(metadata))
        for key, (stored, metadata) in sorted(
            grouped.items(), key=lambda item: (item[0].rsplit(".", 1)[-1], item[0])
        )
    }


def combined(uploads: Iterable[Upload]) -> Upload:
    """Several uploads as one (every set on the volume)."""
    uploads = list(uploads)
    return Upload(
        tuple(group for upload in uploads for group in upload.stored),
        tuple(group for upload in uploads for group in upload.metadata),
    )


def _billable_in_class(upload: Upload, volumes: StorageClass) -> int:
    """Bytes billed in the storage class: each object at least the class's minimum, plus its
    per-object overhead."""
    return sum(
        group.count
        * (max(group.size, volumes.min_billable_bytes) + volumes.overhead_bytes_in_class)
        for group in upload.stored
    )


def storage_usd_per_month(upload: Upload, prices: Prices) -> float:
    """A month of `upload`: its objects in their classes, the overhead of each archived
    object in the metadata class too."""
    volumes, metadata = prices.volumes, prices.metadata
    kept = upload.bytes - upload.stored_bytes
    kept += upload.stored_objects * volumes.overhead_bytes_in_metadata_class
    return (
        _billable_in_class(upload, volumes) * volumes.storage_usd_per_gb_month
        + kept * metadata.storage_usd_per_gb_month
    ) / prices.bytes_per_gb


def objects_usd_per_month(objects: Iterable[tuple[int, Prices]]) -> float:
    """A month of stored objects, each (size, the prices of its own class): as
    storage_usd_per_month, object by object (a target's class may have changed)."""
    total = 0.0
    for size, prices in objects:
        kept, metadata = prices.volumes, prices.metadata
        billed = max(size, kept.min_billable_bytes) + kept.overhead_bytes_in_class
        total += (
            billed * kept.storage_usd_per_gb_month
            + kept.overhead_bytes_in_metadata_class * metadata.storage_usd_per_gb_month
        ) / prices.bytes_per_gb
    return total


def put_cost_usd(upload: Upload, prices: Prices) -> float:
    metadata_objects = upload.objects - upload.stored_objects
    return (
        upload.stored_objects * prices.volumes.put_usd_per_1000
        + metadata_objects * prices.metadata.put_usd_per_1000
    ) / 1000


def early_deletion_usd(upload: Upload, age_days: int, prices: Prices) -> float:
    """What deleting `upload` at `age_days` costs: the days left of the class's minimum."""
    days = max(0, prices.volumes.min_storage_days - age_days)
    monthly = _billable_in_class(upload, prices.volumes) * prices.volumes.storage_usd_per_gb_month
    return monthly / prices.bytes_per_gb * days / DAYS_PER_MONTH


def restore(upload: Upload, prices: Prices) -> list[dict[str, Any]]:
    """Reading `upload` back, per retrieval tier: restore requests and GETs, retrieval per GB,
    and egress of every byte (a restore from offsite alone reads the signatures too)."""
    volumes, metadata = prices.volumes, prices.metadata
    tiers = []
    for tier in volumes.retrieval:
        requests = (
            upload.stored_objects * (tier.requests_usd_per_1000 + volumes.get_usd_per_1000)
            + (upload.objects - upload.stored_objects) * metadata.get_usd_per_1000
        ) / 1000
        retrieval = upload.stored_bytes * tier.usd_per_gb / prices.bytes_per_gb
        egress = upload.bytes * prices.egress_usd_per_gb / prices.bytes_per_gb
        tiers.append(
            {
                "tier": tier.name,
                "hours": tier.hours,
                "requests_usd": requests,
                "retrieval_usd": retrieval,
                "egress_usd": egress,
                "cost_usd": requests + retrieval + egress,
            }
        )
    return tiers


def figures(upload: Upload, prices: Prices) -> dict[str, Any]:
    """Objects, bytes, PUTs and a month's storage of `upload`."""
    return {
        "objects": upload.objects,
        "bytes": upload.bytes,
        "put_requests": upload.objects,
        "put_cost_usd": put_cost_usd(upload, prices),
        "storage_usd_per_month": storage_usd_per_month(upload, prices),
    }


def retention_costs(
    full: Upload, incremental: Upload | None, retention: Retention, prices: Prices
) -> dict[str, Any]:
    """The steady state of `retention`: what is kept, a month of storage and of uploads, and
    the early-deletion charge when a chain goes (its full is fulls_kept * full_every_days
    old then, its incrementals a day younger each)."""
    incremental = incremental or Upload(())
    count, every = retention.incrementals_per_full, retention.full_every_days
    kept_days = retention.fulls_kept * every
    early = early_deletion_usd(full, kept_days, prices) + sum(
        early_deletion_usd(incremental, kept_days - day, prices) for day in range(1, count + 1)
    )
    chain_storage = storage_usd_per_month(full, prices) + count * storage_usd_per_month(
        incremental, prices
    )
    chain_puts = put_cost_usd(full, prices) + count * put_cost_usd(incremental, prices)
    return {
        "fulls_kept": retention.fulls_kept,
        "incrementals_per_full": count,
        "full_every_days": every,
        "objects": retention.fulls_kept * (full.objects + count * incremental.objects),
        "storage_usd_per_month": retention.fulls_kept * chain_storage,
        "put_usd_per_month": chain_puts * DAYS_PER_MONTH / every,
        "full_kept_days": kept_days,
        "min_storage_days": prices.volumes.min_storage_days,
        "early_deletion_usd_per_chain": early,
        "early_deletion_usd_per_month": early * DAYS_PER_MONTH / every,
    }


def plan(
    full: Upload,
    incremental: Upload | None,
    sync: Upload | None,
    sync_change: Upload | None,
    retention: Retention,
    prices: Prices,
) -> dict[str, Any]:
    """dupstack's sets (`full`, a typical `incremental`) beside a per-file sync of the same
    data (`sync`, and the changed files it puts again, `sync_change`); None: not known."""
    sync_figures = None
    if sync is not None:
        change = None if sync_change is None else figures(sync_change, prices)
        if change is not None:
            del change["storage_usd_per_month"]  # it replaces objects, adds none
        sync_figures = {
            **figures(sync, prices),
            "restore": restore(sync, prices),
            "incremental": change,
        }
    return {
        "storage_class": prices.volumes.name,
        "dupstack": {
            **figures(full, prices),
            "restore": restore(full, prices),
            "incremental": None if incremental is None else figures(incremental, prices),
            "retention": retention_costs(full, incremental, retention, prices),
        },
        "per_file_sync": sync_figures,
    }

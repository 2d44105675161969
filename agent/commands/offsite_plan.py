"""dupctl offsite plan: what offsite copies cost, beside a per-file sync of the same data."""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.commands.common import number, percent, require_root, whole
from agent.errors import UsageError
from agent.offsite.plan import MAX_VOLSIZE_MIB, STORAGE_CLASSES, Retention, Workload
from agent.paths import ServerPaths

HELP = "what offsite copies would cost (S3 classes, Swift): arithmetic, no network"
DESCRIPTION = (
    "Objects, PUTs, a month's storage (per-object overhead and minimum sizes included), "
    "the retention's early-deletion charges and a restore per retrieval tier, of the hosts' "
    "sealed sets on the volume (the latest full and incremental), or of a hypothetical host "
    "(--files and --file-size), beside a per-file sync of the same data. Manifests and "
    "signatures are priced in STANDARD, volumes in --storage-class; backups daily. Prices: "
    "agent/data/prices.json (AWS us-east-1, dated), with the inventory's offsite.prices and "
    "then --prices FILE overriding its keys."
)
EXAMPLES = """\
examples:
  dupctl offsite plan
  dupctl offsite plan web1 --storage-class GLACIER --json
  dupctl offsite plan --files 10000000 --file-size 1KiB --volsize 1024 --storage-class DEEP_ARCHIVE
  dupctl offsite plan --files 50000 --file-size 2MB --compression 3 --prices my-cloud.json \\
      --storage-class swift
"""
HYPOTHETICAL = ("file_size", "compression", "volsize", "change_percent")
DEFAULT_STORAGE_CLASS = "STANDARD"  # a target's own default (the inventory's storage_class)
SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([A-Za-z]*)")
SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}  # fmt: skip  # no bare K or M: which of the two would be a guess
MAX_FILE_SIZE = 5 << 40  # S3's largest object


def file_size(text: str) -> int:
    """An argparse type: a size in bytes from `1KiB`, `10MB`, `2.5GiB` or `512`."""
    found = SIZE.fullmatch(text.strip())
    unit = SIZE_UNITS.get(found[2].lower()) if found else None
    if found is None or unit is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size: give bytes, or a number with KB, MB, GB, TB (1000s) "
            "or KiB, MiB, GiB, TiB (1024s)"
        )
    size = round(float(found[1]) * unit)
    if not 1 <= size <= MAX_FILE_SIZE:
        raise argparse.ArgumentTypeError(f"{text} is not between 1 byte and 5 TiB")
    return size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    workload, retention = Workload(1, 1), Retention()
    parser.add_argument("hosts", nargs="*", metavar="HOST", help="default: every host")
    parser.add_argument(
        "--files", type=whole(1, 10**12), metavar="N", help="plan a hypothetical host of N files"
    )
    parser.add_argument(
        "--file-size", type=file_size, metavar="SIZE", help="its files' mean size: 1KiB, 10MB"
    )
    parser.add_argument(
        "--compression",
        type=number(1, 1000, "a ratio"),
        metavar="RATIO",
        help="how many times smaller duplicity makes the data "
        f"(default {workload.compression:g}: none, as for compressed or encrypted data)",
    )
    parser.add_argument(
        "--volsize",
        type=whole(1, MAX_VOLSIZE_MIB),
        metavar="MB",
        help=f"duplicity's --volsize, MiB (default {workload.volsize_mib}; at most "
        f"{MAX_VOLSIZE_MIB}: one PUT per volume)",
    )
    parser.add_argument(
        "--change-percent",
        type=percent(0, 100),
        metavar="P",
        help=f"of the files changed between two backups (default {workload.change_percent:g})",
    )
    parser.add_argument(
        "--storage-class",
        choices=STORAGE_CLASSES,
        default=DEFAULT_STORAGE_CLASS,
        help=f"of the volumes (default {DEFAULT_STORAGE_CLASS})",
    )
    parser.add_argument(
        "--fulls-kept",
        type=whole(1, 1000),
        default=retention.fulls_kept,
        metavar="N",
        help=f"chains the offsite retention keeps (default {retention.fulls_kept})",
    )
    parser.add_argument(
        "--incrementals-per-full",
        type=whole(0, 1000),
        default=retention.incrementals_per_full,
        metavar="N",
        help=f"daily incrementals between fulls (default {retention.incrementals_per_full}: "
        "a full every 7 days)",
    )
    parser.add_argument(
        "--prices", type=Path, metavar="FILE", help="a JSON overriding keys of prices.json"
    )
    parser.add_argument("--json", action="store_true", help="as JSON")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent.actions.offsite_plan import plan_hosts, plan_workload

    retention = Retention(args.fulls_kept, args.incrementals_per_full)
    if args.files is None:
        for key in HYPOTHETICAL:
            if getattr(args, key) is not None:
                flag = "--" + key.replace("_", "-")
                raise UsageError(
                    f"{flag} is for a hypothetical host: give --files N with it",
                    hint="without --files, the plan is of the sets on the volume",
                )
        require_root("offsite plan")  # the sealed sets are root's
        plans = plan_hosts(paths, args.hosts, args.storage_class, retention, args.prices)
    else:
        if args.hosts:
            raise UsageError(
                "give HOST (its sets on the volume) or --files (a hypothetical host), not both"
            )
        if args.file_size is None:
            raise UsageError("--files needs --file-size SIZE (the files' mean size)")
        defaults = Workload(1, 1)
        workload = Workload(
            args.files,
            args.file_size,
            args.compression or defaults.compression,
            args.volsize or defaults.volsize_mib,
            defaults.change_percent if args.change_percent is None else args.change_percent,
        )
        plans = [plan_workload(paths, workload, args.storage_class, retention, args.prices)]
    if args.json:
        print(json.dumps(plans if args.files is None else plans[0], indent=2))
    else:
        for entry in plans:
            _print_plan(entry)
    return 0


def _print_plan(entry: dict[str, Any]) -> None:
    """One plan as a table: the per-file sync beside dupstack, then the retention's lines."""
    prices = entry["prices"]
    changed = ["the inventory's offsite.prices"] if prices["inventory"] else []
    changed += [prices["override"]] if prices["override"] else []
    priced = ", ".join(
        [f"prices of {prices['region'] or 'no region'} as of {prices['as_of']}", *changed]
    )
    if "host" in entry:
        stored = entry["on_volume"]
        title = f"{entry['host']}: {entry['sets']} sets on the volume" + (
            f", {stored['objects']} objects, {_bytes(stored['bytes'])}: "
            f"{_usd(stored['put_cost_usd'])} to copy, {_usd(stored['storage_usd_per_month'])}"
            " a month"
            if stored
            else ""
        )
    else:
        work = entry["workload"]
        title = f"{work['files']:,} files of {_bytes(work['file_size'])}"
    print(f"{title} ({entry['storage_class']}, {priced})")
    dupstack, sync = entry["dupstack"], entry["per_file_sync"]
    if dupstack is None:
        print(f"  {entry['note']}")
        return
    from rich.table import Table  # rich: only when a table is shown

    from agent import render

    table = Table(box=None)
    for column in ("", "per-file sync", "dupstack"):
        table.add_column(column, overflow="fold")
    rows: list[tuple[str, str, Callable[[Any], str]]] = [
        ("objects of a full", "objects", "{:,}".format),
        ("PUTs of a full", "put_cost_usd", _usd),
        ("storage a month", "storage_usd_per_month", _usd),
    ]
    for label, key, shown in rows:
        table.add_row(label, _cell(sync, key, shown), _cell(dupstack, key, shown))
    for label, key, shown in rows[:2]:
        label = label.replace("a full", "an incremental")
        table.add_row(
            label,
            _cell(sync and sync["incremental"], key, shown),
            _cell(dupstack["incremental"], key, shown),
        )
    for index, tier in enumerate(dupstack["restore"]):
        hours = tier["hours"]
        when = "at once" if not hours else f"{hours * 60:.0f} min" if hours < 1 else f"{hours:g} h"
        table.add_row(
            f"restore, {tier['tier']} ({when})",
            _usd(sync["restore"][index]["cost_usd"]) if sync else "-",
            _usd(tier["cost_usd"]),
        )
    render.print_table(table)
    kept = dupstack["retention"]
    print(
        f"  retention: {kept['fulls_kept']} fulls kept, {kept['incrementals_per_full']} "
        f"incrementals each: {kept['objects']:,} objects, "
        f"{_usd(kept['storage_usd_per_month'])} a month of storage, "
        f"{_usd(kept['put_usd_per_month'])} a month of PUTs"
    )
    if kept["early_deletion_usd_per_chain"]:
        print(
            f"  early deletion: a chain goes after {kept['full_kept_days']} days, before "
            f"{entry['storage_class']}'s {kept['min_storage_days']}: "
            f"{_usd(kept['early_deletion_usd_per_chain'])} a chain, "
            f"{_usd(kept['early_deletion_usd_per_month'])} a month"
        )
    if sync is None:
        print(f"  per-file sync: its file count is not known: `dupctl drill {entry['host']}`")


def _cell(figures: dict[str, Any] | None, key: str, shown: Callable[[Any], str]) -> str:
    return "-" if figures is None else shown(figures[key])


def _usd(amount: float) -> str:
    """Cents from a dollar up; below, two significant digits (never 6e-05)."""
    if amount == 0:
        return "$0"
    places = 2 if amount >= 1 else min(6, 1 - math.floor(math.log10(amount)))
    return f"${amount:,.{places}f}"


def _bytes(count: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count} B"

"""dupctl's rich output: the tables of backup, status, host list and schedule show, and the
live progress of a backup and of an offsite push. The commands pass data; how it looks is
decided here only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table


def _table(*columns: str) -> Table:
    """A borderless table whose cells wrap rather than get cut (a fingerprint stays whole)."""
    table = Table(box=None)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _minute(moment: str | None) -> str | None:
    """`2026-11-22 03:53` from `2026-11-22T03:53:18Z`."""
    return moment and moment[:16].replace("T", " ")


def print_table(table: Table) -> None:
    """A table on a terminal's width; piped, one line per row (no wrapping at 80)."""
    Console(soft_wrap=True, width=None if sys.stdout.isatty() else 1000).print(table)


@contextmanager
def backup_progress() -> Iterator[Callable[[str, str], None]]:
    """A spinner line per host while the backup runs, gone when it ends (for terminals).

    Yields show(host, text), which adds the host's line or updates it."""
    columns = (SpinnerColumn(), TextColumn("{task.fields[host]}"), TextColumn("{task.description}"))
    with Progress(*columns, TimeElapsedColumn(), transient=True) as progress:
        tasks: dict[str, TaskID] = {}

        def show(host: str, text: str) -> None:
            if host in tasks:
                progress.update(tasks[host], description=text)
            else:
                tasks[host] = progress.add_task(text, host=host)

        yield show


@contextmanager
def transfer_progress() -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """A bar per transfer (bytes, rate, time left), for terminals.

    Yields start(label, total bytes), which adds a bar and returns advance(bytes)."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns) as progress:

        def start(label: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(label, total=total)
            return lambda count: progress.advance(task, count)

        yield start


def print_backup_summary(records: list[dict[str, Any]]) -> None:
    """One row per host of `dupctl backup`: its result, full or incremental, how long."""
    table = _table("host", "result", "action", "duration", "error")
    for run in records:
        duration = f"{run['duration']:.1f} s"
        table.add_row(
            run["host"], run["result"], run["action"] or "-", duration, run["error"] or ""
        )
    print_table(table)


def print_status(entries: list[dict[str, Any]]) -> None:
    """One row per host of `dupctl status`: last run, chains and sets, fulls, next run."""
    table = _table(
        "host",
        "last run",
        "result",
        "chain",
        "chains",
        "sets",
        "size",
        "last set",
        "last full",
        "next full",
        "next run",
        "error",
    )
    for entry in entries:
        run = entry["last_run"] or {}
        size = entry.get("size")
        table.add_row(
            entry["host"],
            _minute(run.get("end")) or "never",
            run.get("result", "-"),
            *(str(entry.get(key, "-")) for key in ("chain_length", "chains", "sets")),
            (f"{size // 1024} KiB" if size is not None else "-")
            + (f" of {entry['limit'] // 1024} KiB" if entry.get("limit") is not None else "")
            + (" (share)" if entry.get("limit_from") == "share" else ""),
            entry.get("last_set") or "-",
            _minute(entry.get("last_full")) or "-",
            _minute(entry.get("next_full")) or "-",
            _minute(entry["schedule"]["next_backup"]) or "not scheduled",
            entry["error"] or run.get("error") or "",
        )
    print_table(table)


def _size(count: int) -> str:
    """`900 B`, `2.4 MiB`: bytes in binary units, one decimal."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def print_sets(found: dict[str, Any]) -> None:
    """One row per set of `dupctl sets`, chain by chain: the time exactly as --time takes it."""
    rows = [(str(number), s) for number, c in enumerate(found["chains"], 1) for s in c["sets"]]
    rows += [("none", backup_set) for backup_set in found["orphaned"]]
    if not rows:
        print(f"{found['host']}: no sets on the volume yet")
        return
    table = _table("chain", "type", "time", "volumes", "size", "state")
    for chain, backup_set in rows:
        state = "complete" if backup_set["complete"] else "incomplete (no manifest)"
        if chain == "none":
            state += ", extends no set"
        table.add_row(
            chain,
            backup_set["type"],
            backup_set["time"],
            str(backup_set["volumes"]),
            _size(backup_set["bytes"]),
            state + ("" if backup_set["sealed"] else ", not sealed"),
        )
    print_table(table)


def print_hosts(hosts: list[dict[str, Any]]) -> None:
    """The inventory of `dupctl host list`, or how to start one when it is empty."""
    table = _table("name", "address", "user", "port", "paths", "excludes", "host key")
    for host in hosts:
        table.add_row(
            host["name"],
            host["address"],
            host["user"],
            str(host["port"]),
            " ".join(host["paths"]),
            " ".join(host["excludes"]),
            host["host_key"] or "not pinned",
        )
    Console(soft_wrap=True).print(table if hosts else "no hosts: add one with dupctl host add")


def print_schedule(jobs: list[dict[str, Any]]) -> None:
    """One row per cron job of `dupctl schedule show`: when, its next and its last run."""
    table = _table("job", "host", "when", "cron", "next run", "last run", "full every")
    for job in jobs:
        last = job.get("last_run")
        table.add_row(
            job["job"],
            job["host"] or "-",
            job["when"],
            job["cron"],
            (job["next_run"] or "at boot").replace("T", " "),
            f"{_minute(last['start'])} {last['result']}" if last else "-",
            job.get("full_if_older_than", ""),
        )
    print_table(table)


def print_offsite_status(entries: list[dict[str, Any]]) -> None:
    table = _table("host", "target", "sets copied", "pending", "objects", "size", "a month",
                   "last push", "thaws")  # fmt: skip
    for entry in entries:
        objects = ", ".join(f"{cls} {n}" for cls, n in sorted(entry["objects_by_class"].items()))
        table.add_row(
            entry["host"], entry["target"], str(entry["sets_copied"]), str(entry["sets_pending"]),
            objects or "-", f"{sum(entry['bytes_by_class'].values()) // 1024} KiB",
            f"${entry['usd_per_month']:.4f}", _minute(entry["last_push"]) or "never",
            str(entry["thaws_requested"]),
        )  # fmt: skip
    print_table(table)

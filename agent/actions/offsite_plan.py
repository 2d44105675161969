"""`dupctl offsite plan`: what offsite copies would cost, for the hosts' sealed sets on the
volume or for a hypothetical host. Arithmetic only (agent/offsite/plan.py): no network."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.config.load import HostConfig, load_inventory
from agent.offsite import plan
from agent.offsite.prices import PRICES_FILE, load_prices
from agent.paths import ServerPaths
from agent.repository import backups_dir
from agent.runlog import read_drill
from agent.sealing import sealed


def _about(prices: plan.Prices, override: Path | None, config: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "as_of": prices.as_of,
        "region": prices.region,
        "file": str(PRICES_FILE),
        "inventory": bool(config),  # whether its offsite.prices changed any
        "override": str(override) if override else None,
    }


def _configured(paths: ServerPaths) -> Mapping[str, Any]:
    """The inventory's offsite.prices, for a hypothetical plan: none where there is no
    inventory or it is not readable (not root), as before `dupctl init`."""
    try:
        with paths.config_file.open():
            pass
    except OSError:
        return {}
    return load_inventory(paths).prices


def plan_workload(
    paths: ServerPaths,
    workload: plan.Workload,
    storage_class: str,
    retention: plan.Retention,
    override: Path | None = None,
) -> dict[str, Any]:
    """The plan of a hypothetical host."""
    config = _configured(paths)
    prices = load_prices(storage_class, override, config)
    figures = plan.plan(
        plan.full_set(workload),
        plan.incremental_set(workload),
        plan.per_file_sync(workload.files, workload.file_size),
        plan.per_file_sync(workload.changed_files, workload.file_size),
        retention,
        prices,
    )
    return {
        "workload": {
            "files": workload.files,
            "file_size": workload.file_size,
            "compression": workload.compression,
            "volsize_mib": workload.volsize_mib,
            "change_percent": workload.change_percent,
        },
        **figures,
        "prices": _about(prices, override, config),
    }


def plan_hosts(
    paths: ServerPaths,
    names: list[str],
    storage_class: str,
    retention: plan.Retention,
    override: Path | None = None,
) -> list[dict[str, Any]]:
    """One plan per host (all when `names` is empty) from its sealed sets: the latest full
    and the latest incremental as typical, every set as what a first push copies. The
    per-file sync counts the files of the host's last drill (none: not planned)."""
    inventory = load_inventory(paths)
    for name in names:
        inventory.host(name)  # an unknown name is an error before any work
    prices = load_prices(storage_class, override, inventory.prices)
    return [
        {
            **_host_plan(paths, inventory.host(name), retention, prices),
            "prices": _about(prices, override, inventory.prices),
        }
        for name in dict.fromkeys(names) or sorted(inventory.hosts)
    ]


def _host_plan(
    paths: ServerPaths, host: HostConfig, retention: plan.Retention, prices: plan.Prices
) -> dict[str, Any]:
    sets = plan.sets_on_volume(_sealed_sizes(paths, host))
    fulls = [upload for key, upload in sets.items() if key.startswith("full.")]
    incrementals = [upload for key, upload in sets.items() if key.startswith("inc.")]
    entry: dict[str, Any] = {
        "host": host.name,
        "storage_class": prices.volumes.name,
        "sets": len(sets),
        "on_volume": plan.figures(plan.combined(sets.values()), prices) if sets else None,
    }
    if not fulls:
        note = "no full set sealed on the volume yet"
        return {**entry, "note": note, "dupstack": None, "per_file_sync": None}
    drill = read_drill(paths, host.name)
    files = drill["files_in_set"] if drill else 0
    # The files' own sizes are not on the volume: the full's stored bytes (compressed, so
    # a lower bound) are shared among them.
    sync = plan.per_file_sync(files, max(1, fulls[-1].stored_bytes // files)) if files else None
    return {
        **entry,
        "files": files or None,
        **plan.plan(
            fulls[-1], incrementals[-1] if incrementals else None, sync, None, retention, prices
        ),
    }


def _sealed_sizes(paths: ServerPaths, host: HostConfig) -> dict[str, int]:
    """Bytes of each sealed file of the host (one that prune removes meanwhile is left out)."""
    folder = backups_dir(paths, host)
    sizes = {}
    for name in sealed(paths, host):
        try:
            sizes[name] = (folder / name).stat().st_size
        except FileNotFoundError:
            continue
    return sizes

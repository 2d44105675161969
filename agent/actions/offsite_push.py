"""`dupctl offsite push [HOST...]`: copy the hosts' sealed sets to the offsite targets.

Each host under its offsite lock (agent/locks.py): never beside another push or an offsite
prune of it, while its backups and prunes go on (a file a prune removes meanwhile is left
out). One host's or target's failure stops no other. The key escrow goes to every target
too (it is already encrypted).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from agent.config.load import load_inventory
from agent.errors import DupstackError, OffsiteFailed
from agent.locks import host_lock
from agent.offsite.push import ESCROW_HOST, Meter, push_escrow, push_host
from agent.paths import ServerPaths


def offsite_push(
    paths: ServerPaths,
    names: Sequence[str],
    target_names: Sequence[str],
    say: Callable[[str], None],
    meter: Meter | None = None,
) -> list[dict[str, Any]]:
    """Push `names` (every host when empty) to `target_names` (every target when empty);
    one record per host and target (`error` set where it failed)."""
    inventory = load_inventory(paths)
    targets = inventory.chosen_targets(target_names)
    hosts = inventory.chosen_hosts(names)
    records: list[dict[str, Any]] = []
    for target in targets:
        try:
            with host_lock(paths, ESCROW_HOST, "offsite"):  # its ledger: one push at a time
                push_escrow(paths, target, say)
        except DupstackError as error:
            records.append({"host": None, "target": target.name, "error": error.message})
            say(f"escrow -> {target.name}: failed: {error.message}")
        for host in hosts:
            try:
                with host_lock(paths, host.name, "offsite"):
                    result = push_host(paths, host, target, say, meter)
            except DupstackError as error:
                records.append({"host": host.name, "target": target.name, "error": error.message})
                say(f"{host.name} -> {target.name}: failed: {error.message.splitlines()[0]}")
                continue
            records.append({**asdict(result), "error": None})
            say(f"{host.name} -> {target.name}: {result.copied} copied, {result.skipped} there"
                + (f", {len(result.replaced)} changed or missing offsite, copied again"
                   if result.replaced else ""))  # fmt: skip
    failed = [record for record in records if record["error"]]
    if failed:
        raise OffsiteFailed(
            f"offsite push failed for {len(failed)} of {len(records)} copies: "
            + failed[0]["error"].splitlines()[0],
            hint="the next push completes what is missing; see the lines above",
        )
    return records

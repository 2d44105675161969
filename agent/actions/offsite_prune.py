"""`dupctl offsite prune [HOST...]`: each target's own retention applied to its copies.

The target's `keep_full` and `remove_older_than` (never the volume's: a local prune removes
nothing offsite). A chain holding an object younger than its class's minimum duration is kept,
with what removing it now would cost, unless --force (agent/offsite/retention.py). Swift has
no classes: its objects count as STANDARD, which has no minimum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from agent.config.load import load_inventory
from agent.errors import DupstackError, OffsiteFailed
from agent.locks import host_lock
from agent.offsite import retention
from agent.offsite.ledger import read_ledger, save_ledger
from agent.offsite.prices import load_prices
from agent.offsite.push import open_store
from agent.paths import ServerPaths
from agent.runlog import stamp
from agent.times import interval

CLASSES = ("STANDARD", "STANDARD_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE")


def offsite_prune(
    paths: ServerPaths,
    names: Sequence[str],
    target_names: Sequence[str],
    *,
    force: bool,
    dry_run: bool,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """One record per host, target and chain: removed (or, dry, would be), or kept and why."""
    inventory = load_inventory(paths)
    targets = inventory.chosen_targets(target_names)
    hosts = inventory.chosen_hosts(names)
    prices = {name: load_prices(name, config=inventory.prices) for name in CLASSES}
    now = datetime.now(UTC)
    records: list[dict[str, Any]] = []
    failures = 0
    for target in targets:
        if target.keep_full is None and target.remove_older_than is None:
            say(f"{target.name}: no retention set (keep_full, remove_older_than): nothing pruned")
            continue
        older = interval(target.remove_older_than) if target.remove_older_than else None
        store = open_store(paths, target)
        for host in hosts:
            try:
                with host_lock(paths, host.name, "offsite"):
                    listed = [retention.Listed(o.name, o.size, o.storage_class, o.modified)
                              for o in store.listing(host.name).values()]  # fmt: skip
                    decisions = retention.decide(listed, keep_full=target.keep_full,
                                                 older_than=older, now=now, prices=prices,
                                                 force=force)  # fmt: skip
                    for decision in decisions:
                        records.append(_record(host.name, target.name, decision, dry_run))
                        say(_line(host.name, target.name, decision, dry_run))
                        if decision.remove and not dry_run:
                            order = retention.deletion_order(decision.chain)
                            store.delete(host.name, order)
                            _forget(paths, target.name, host.name, order)
            except DupstackError as error:
                failures += 1
                say(f"{host.name} on {target.name}: failed: {error.message.splitlines()[0]}")
    if failures:
        raise OffsiteFailed(f"offsite prune failed for {failures} host(s) (see above)",
                            hint="the next prune tries again")  # fmt: skip
    return records


def _record(host: str, target: str, decision: retention.Decision, dry: bool) -> dict[str, Any]:
    return {
        "host": host, "target": target, "full": decision.chain.full,
        "newest": decision.chain.newest, "objects": len(decision.chain.objects),
        "removed": decision.remove and not dry, "would_remove": decision.remove,
        "why": decision.why, "early_deletion_usd": decision.early_usd,
        "early_objects": decision.early_objects,
    }  # fmt: skip


def _line(host: str, target: str, decision: retention.Decision, dry: bool) -> str:
    verb = ("would remove" if dry else "removed") if decision.remove else "kept"
    cost = (f"; removing it now costs ${decision.early_usd:.2f} of early-deletion charges"
            if decision.early_objects else "")  # fmt: skip
    return (f"{host} on {target}: chain of {decision.chain.full} ({len(decision.chain.objects)} "
            f"objects) {verb}: {decision.why}{cost}")  # fmt: skip


def _forget(paths: ServerPaths, target: str, host: str, names: Sequence[str]) -> None:
    """Mark removed objects in the push ledger: a later push must not copy them again from
    the volume (where the volume's own retention may keep them longer)."""
    ledger = read_ledger(paths, target, host)
    when = stamp(datetime.now(UTC))
    for name in names:
        ledger["objects"][name] = {**ledger["objects"].get(name, {}), "pruned": when}
    save_ledger(paths, target, host, ledger)

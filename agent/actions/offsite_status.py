"""`dupctl offsite status`: per host and target, what is copied and what is pending, and what
storing it costs a month, from this server's own records (the push ledgers and thaw
tickets, priced by agent/offsite/prices.py): no request to any target."""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

from agent.config.load import OffsiteTarget, load_inventory
from agent.offsite import plan
from agent.offsite.ledger import read_ledger
from agent.offsite.prices import load_prices
from agent.offsite.thaw import Ticket
from agent.paths import ServerPaths
from agent.screening import set_of
from agent.sealing import sealed


def offsite_status(paths: ServerPaths, names: list[str]) -> list[dict[str, Any]]:
    """One entry per host and target (every host when `names` is empty)."""
    inventory = load_inventory(paths)
    hosts = inventory.chosen_hosts(names)

    @functools.cache
    def prices(target: OffsiteTarget, storage_class: str) -> plan.Prices:
        """Swift has one price, whatever its objects say of their class."""
        return load_prices("swift" if target.type == "swift" else storage_class,
                           config=inventory.prices)  # fmt: skip

    entries = []
    for target in (inventory.offsite[name] for name in sorted(inventory.offsite)):
        for host in hosts:
            ledger = read_ledger(paths, target.name, host.name)
            copied = ledger["objects"]
            local = set(sealed(paths, host))
            sets = {set_of(name) for name in local if name.endswith(".manifest.gpg")}
            done = {set_of(name) for name in local & set(copied) if name.endswith(".manifest.gpg")}
            objects: Counter[str] = Counter()
            size: Counter[str] = Counter()
            for entry in copied.values():
                objects[entry["storage_class"]] += 1
                size[entry["storage_class"]] += entry["size"]
            priced = [(entry["size"], prices(target, entry["storage_class"]))
                      for entry in copied.values()]  # fmt: skip
            ticket = Ticket.of(paths, host.name, target.name)
            entries.append({
                "host": host.name,
                "target": target.name,
                "sets_copied": len(done),
                "sets_pending": len(sets - done),
                "files_pending": len(local - set(copied)),
                "objects_by_class": dict(objects),
                "bytes_by_class": dict(size),
                "last_push": ledger["last_push"],
                "thaws_requested": len(ticket.requested),
                "usd_per_month": round(plan.objects_usd_per_month(priced), 6),
            })  # fmt: skip
    return entries

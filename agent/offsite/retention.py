"""Offsite retention, the target's own policy (`keep_full`, `remove_older_than`), never the
volume's: pure decisions on a listing of a host's objects.

Archive classes have a minimum storage duration (IA 30 days, Glacier IR and Flexible 90,
Deep Archive 180): deleting earlier is charged for the rest. A chain holding an object younger
than its class's minimum is kept, with what deleting it now would cost, unless forced. The
newest chain is never removed; a chain goes whole, its manifests first (a set without its
manifest counts as incomplete, never as a set with volumes missing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agent.offsite.plan import DAYS_PER_MONTH, Prices
from agent.screening import NAMES

STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Listed:
    name: str
    size: int
    storage_class: str
    modified: datetime


@dataclass
class Chain:
    full: str  # the full set's time
    newest: str  # the time of its newest set
    objects: list[Listed] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    chain: Chain
    remove: bool
    why: str
    early_usd: float  # what removing it now costs in early-deletion charges
    early_objects: int  # objects younger than their class's minimum


def chains(listed: Sequence[Listed]) -> list[Chain]:
    """The host's chains, oldest first: each full starts one, incrementals join the chain
    whose newest set they continue (objects of no chain are left out: never removed)."""
    found: dict[str, Chain] = {}
    ending: dict[str, Chain] = {}
    sets: dict[tuple[str, str, str], list[Listed]] = {}
    for item in listed:
        match = NAMES.fullmatch(item.name)
        if not match:
            continue
        if match["time"] or match["sigtime"]:
            key = ("full", match["time"] or match["sigtime"], "")
        else:
            key = ("inc", match["start"] or match["sigstart"], match["end"] or match["sigend"])
        sets.setdefault(key, []).append(item)
    by_end = sorted(sets.items(), key=lambda pair: pair[0][2] or pair[0][1])  # in time order
    for (kind, start, end), items in by_end:
        if kind == "full":
            chain = found[start] = Chain(start, start, list(items))
            ending[start] = chain
        elif (chain := ending.pop(start, None)) is not None:
            chain.objects += items
            chain.newest = end
            ending[end] = chain
    return sorted(found.values(), key=lambda chain: chain.full)


def decide(
    listed: Sequence[Listed],
    *,
    keep_full: int | None,
    older_than: timedelta | None,
    now: datetime,
    prices: Mapping[str, Prices],
    force: bool,
) -> list[Decision]:
    """For each chain: removed or kept, and why; `prices` by storage class."""
    found = chains(listed)
    decisions = []
    for index, chain in enumerate(found):
        newest = index == len(found) - 1
        beyond = keep_full is not None and len(found) - index > keep_full
        newest_time = datetime.strptime(chain.newest, STAMP).replace(tzinfo=now.tzinfo)
        old = older_than is not None and now - newest_time > older_than
        early_usd, early = _early(chain, now, prices)
        if newest or not (beyond or old):
            why = "the newest chain" if newest else "within the retention"
            decisions.append(Decision(chain, False, why, early_usd, early))
        elif early and not force:
            why = f"{early} object(s) younger than their class's minimum duration (--force)"
            decisions.append(Decision(chain, False, why, early_usd, early))
        else:
            why = f"beyond keep_full {keep_full}" if beyond else "older than remove_older_than"
            decisions.append(Decision(chain, True, why, early_usd, early))
    return decisions


def deletion_order(chain: Chain) -> list[str]:
    """Manifests first, then the rest."""
    names = [item.name for item in chain.objects]
    return sorted(names, key=lambda name: (not name.endswith(".manifest.gpg"), name))


def _early(chain: Chain, now: datetime, prices: Mapping[str, Prices]) -> tuple[float, int]:
    cost, count = 0.0, 0
    for item in chain.objects:
        price = prices.get(item.storage_class)
        if price is None:
            continue
        left = price.volumes.min_storage_days - (now - item.modified).days
        if left > 0:
            count += 1
            billed = max(item.size, price.volumes.min_billable_bytes)
            billed += price.volumes.overhead_bytes_in_class  # Glacier's index, per object
            monthly = billed * price.volumes.storage_usd_per_gb_month / price.bytes_per_gb
            cost += monthly * left / DAYS_PER_MONTH
    return cost, count

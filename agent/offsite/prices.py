"""The price data of the planner, the status's monthly cost, the thaw's and the early-deletion
guard's: agent/data/prices.json, with the operator's overrides (the inventory's
`offsite.prices`, then `--prices FILE`: the same shape, holding only the keys that differ)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent import PACKAGE_DATA
from agent.errors import UsageError
from agent.files import read_small
from agent.offsite import plan

PRICES_FILE = PACKAGE_DATA / "prices.json"
MAX_PRICES = 1 << 20  # bytes: prices.json is 4 KB


def load_prices(
    storage_class: str, override: Path | None = None, config: Mapping[str, Any] | None = None
) -> plan.Prices:
    """The prices of `storage_class`: prices.json, with the keys of the inventory's
    `offsite.prices` (`config`), then of the file `override` (--prices), in their place."""
    document = priced(config)
    source = str(PRICES_FILE)
    if config:
        source = "the inventory's offsite.prices"
    if override is not None:
        try:
            text = read_small(override, MAX_PRICES)
        except OSError as error:
            raise UsageError(f"cannot read --prices {override}: {error.strerror}") from None
        try:
            changes = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(
                f"--prices {override}:{error.lineno}: not JSON: {error.msg}",
                hint=f"the same shape as {PRICES_FILE}, with only the keys that differ",
            ) from None
        if not isinstance(changes, dict):
            raise UsageError(f"--prices {override}: expected a JSON object")
        document = plan.merge_prices(document, changes, str(override))
        source = str(override)
    return plan.prices_for(document, storage_class, source)


def priced(config: Mapping[str, Any] | None, source: str = "offsite.prices") -> dict[str, Any]:
    """prices.json with the inventory's overrides in place, every class checked: a key it
    lacks or a value that is not a price is refused, naming it."""
    document: dict[str, Any] = json.loads(PRICES_FILE.read_text())
    if not config:
        return document
    document = plan.merge_prices(document, config, source)
    for service in document["services"].values():
        for name in service["classes"]:
            plan.prices_for(document, name, source)
    return document

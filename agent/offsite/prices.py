"""The price data of the planner and the early-deletion guard: agent/data/prices.json, with
an operator's override (a JSON of the same shape holding only the keys that differ)."""

from __future__ import annotations

import json
from pathlib import Path

from agent.errors import UsageError
from agent.offsite import plan

PRICES_FILE = Path(__file__).resolve().parents[1] / "data" / "prices.json"


def load_prices(storage_class: str, override: Path | None = None) -> plan.Prices:
    """The prices of `storage_class`: prices.json, with the keys of `override` in its place."""
    document = json.loads(PRICES_FILE.read_text())
    if override is not None:
        try:
            text = override.read_text()
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
    return plan.prices_for(document, storage_class, str(override or PRICES_FILE))
